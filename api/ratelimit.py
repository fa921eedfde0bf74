"""A small per-process sliding-window rate limiter (for lookups; token limits come later).

In memory, so each server process counts separately; a shared (Redis) store is the option for
several processes, behind the same ``hit`` method.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Hashable
from typing import Protocol


class Limiter(Protocol):
    """What the guard and the token endpoint need of a limiter, in memory or in Redis."""

    async def allow(self, key: Hashable) -> bool:
        """Count one use of ``key``'s budget; False when it is spent."""
        ...


class RateLimiter:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[Hashable, deque[float]] = defaultdict(deque)

    def hit(self, key: Hashable, now: float | None = None) -> bool:
        """Count one use; False when the key is over its limit (the use is not counted)."""
        t = time.monotonic() if now is None else now
        if len(self._hits) > 50_000:  # forget keys whose window has passed (memory stays bounded)
            stale = [k for k, v in self._hits.items() if not v or v[-1] <= t - self.window]
            for k in stale:
                del self._hits[k]
        hits = self._hits[key]
        while hits and hits[0] <= t - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(t)
        return True

    async def allow(self, key: Hashable) -> bool:
        return self.hit(key)


class RedisRateLimiter:
    """The same budget shared by several server processes, in Redis (fixed one-minute windows:
    INCR + EXPIRE, atomic in a pipeline)."""

    def __init__(self, url: str, limit: int, window_seconds: int = 60) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.limit = limit
        self.window = window_seconds

    async def allow(self, key: Hashable) -> bool:
        bucket = f"xinqiao:rate:{key}:{int(time.time()) // self.window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            # Queued one at a time: redis-py types a pipeline's command as the client's (an
            # awaitable result), not as the pipeline that chaining returns at run time.
            pipe.incr(bucket)
            pipe.expire(bucket, self.window * 2)
            count, _ = await pipe.execute()
        return int(count) <= self.limit

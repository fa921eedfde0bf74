"""Bearer tokens: Ed25519-signed JWTs typed ``at+jwt`` (RFC 9068), verified per RFC 8725.

The signing key is generated on first use into the ignored key folder with mode 0600, or provided
by the operator there. Only EdDSA is accepted, so ``alg: none`` and HMAC-with-the-public-key
confusions are refused by construction.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from api.settings import Settings
from audit.keys import load_or_create_ed25519

KEY_FILE = "token-signing-ed25519.pem"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not ours. Deliberately no detail."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    username: str
    token_id: str
    expires_at: int
    client_id: str | None = None
    """Set for partner clients' tokens (``sub`` is then ``client:<id>``)."""


@dataclass(frozen=True)
class ExternalIssuer:
    """An external identity provider whose tokens are accepted for staff: its issuer, the
    audience it issues for us, and its public keys (a JWKS file the operator keeps current)."""

    issuer: str
    audience: str
    keys: jwt.PyJWKSet

    @classmethod
    def from_file(cls, issuer: str, audience: str, path: Path) -> ExternalIssuer:
        try:
            return cls(issuer, audience, jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8")))
        except (OSError, jwt.PyJWTError) as exc:
            raise SystemExit(
                f"cannot read the identity provider's JWKS file {path}: {exc}"
            ) from None


EXTERNAL_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


class TokenService:
    def __init__(
        self,
        private_key: Ed25519PrivateKey,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        external: ExternalIssuer | None = None,
    ) -> None:
        self._private = private_key
        self._public: Ed25519PublicKey = private_key.public_key()
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.external = external

    @classmethod
    def from_key_dir(
        cls, key_dir: Path, *, issuer: str, audience: str, ttl_seconds: int, create: bool = True
    ) -> TokenService:
        return cls(
            load_or_create_ed25519(key_dir / KEY_FILE, create=create),
            issuer=issuer,
            audience=audience,
            ttl_seconds=ttl_seconds,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        """The server's tokens: issued and verified with the key folder's signing key, and the
        configured identity provider's tokens accepted for staff too."""
        tokens = cls.from_key_dir(
            settings.key_dir,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            ttl_seconds=settings.token_ttl_seconds,
        )
        if settings.oidc_issuer and settings.oidc_jwks_file:
            tokens.external = ExternalIssuer.from_file(
                settings.oidc_issuer,
                settings.oidc_audience or settings.token_audience,
                settings.oidc_jwks_file,
            )
        return tokens

    def issue(
        self,
        *,
        staff_id: int,
        username: str,
        ttl_seconds: int | None = None,
        unit_id: int | None = None,
        roles: list[str] | None = None,
    ) -> str:
        """A staff access token. ``unit``/``roles`` are informational for the frontend; the
        server never trusts them and re-reads both on every request."""
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(staff_id),
            "preferred_username": username,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_seconds or self.ttl_seconds),
            "jti": secrets.token_urlsafe(16),
        }
        if unit_id is not None:
            claims["unit"] = unit_id
        if roles is not None:
            claims["roles"] = roles
        return jwt.encode(claims, self._private, algorithm="EdDSA", headers={"typ": "at+jwt"})

    def issue_client(self, *, client_id: str, ttl_seconds: int) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"client:{client_id}",
            "client_id": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self._private, algorithm="EdDSA", headers={"typ": "at+jwt"})

    def _verify_external(self, token: str) -> TokenClaims:
        """A staff token from the configured identity provider: its key (by ``kid``), issuer
        and audience checked; the staff account is found by ``preferred_username``."""
        ext = self.external
        assert ext is not None
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "at+jwt":  # RFC 9068: never an ID token as an access token
                raise InvalidToken()
            kid = header.get("kid")
            key = next((k for k in ext.keys.keys if kid is None or k.key_id == kid), None)
            if key is None:
                raise InvalidToken()
            claims = jwt.decode(
                token,
                key.key,
                algorithms=EXTERNAL_ALGORITHMS,
                audience=ext.audience,
                issuer=ext.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        username = claims.get("preferred_username")
        if not isinstance(username, str) or not username:
            raise InvalidToken()
        return TokenClaims(
            subject=f"external:{claims['sub']}",
            username=username,
            token_id=str(claims.get("jti") or claims["sub"])[:64],
            expires_at=int(claims["exp"]),
        )

    def verify(self, token: str) -> TokenClaims:
        if self.external is not None:
            try:
                issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            except jwt.PyJWTError:
                raise InvalidToken() from None
            if issuer == self.external.issuer and issuer != self.issuer:
                return self._verify_external(token)
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "at+jwt":
                raise InvalidToken()
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return TokenClaims(
            subject=claims["sub"],
            username=str(claims.get("preferred_username", "")),
            token_id=claims["jti"],
            expires_at=claims["exp"],
            client_id=claims.get("client_id"),
        )

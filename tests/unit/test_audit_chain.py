"""The chain encoding and the signed-note checkpoints, without a database."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import GENESIS, canonical, event_hash, link
from audit.checkpoints import BadCheckpoint, CheckpointBody, sign, verify
from audit.verify import verify_events


def events(n: int) -> list[dict[str, object]]:
    return [
        {
            "occurred_at": datetime(2026, 11, 22, 8, 0, i, tzinfo=UTC),
            "request_id": f"r{i}",
            "actor_username": "grid.donghu",
            "actor_roles": "grid_worker",
            "purpose": "intake",
            "kind": "read",
            "outcome": "permitted",
            "entity": "person",
            "entity_id": i,
            "fields": ["name"],
            "redacted": [],
            "field_classes": ["identity"],
            "relations": ["jurisdiction"],
            "break_glass": False,
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("algorithm", ["sha256", "sm3"])
def test_chain_links_and_detects_edits(algorithm: str) -> None:
    rows = events(5)
    head = link(rows, first_seq=1, prev_hash=GENESIS, algorithm=algorithm)
    assert head == rows[-1]["hash"] and rows[0]["prev_hash"] == GENESIS
    assert all(r["hash_alg"] == algorithm for r in rows)
    assert verify_events(rows).ok
    rows[2]["purpose"] = "statistics"
    report = verify_events(rows)
    assert not report.ok and report.broken_seq == 3


def test_sm3_and_sha256_differ_and_encoding_is_canonical() -> None:
    a, b = events(1)[0], events(1)[0]
    a.update(seq=1, prev_hash=GENESIS, hash_alg="sha256")
    b.update(seq=1, prev_hash=GENESIS, hash_alg="sm3")
    assert event_hash(a) != event_hash(b) and len(event_hash(b)) == 64
    assert canonical(a) == canonical(dict(reversed(list(a.items()))))
    assert b'"occurred_at":"2026-11-22T08:00:00.000000Z"' in canonical(a)


def test_signed_note_round_trip_and_forgery() -> None:
    key = Ed25519PrivateKey.generate()
    body = CheckpointBody("xinqiao/access-log", 42, "ab" * 32, "sha256")
    note = sign(body, key)
    lines = note.split("\n")
    assert lines[:2] == ["xinqiao/access-log", "42"]
    assert base64.b64decode(lines[2]) == bytes.fromhex("ab" * 32)
    assert lines[4] == "xinqiao-reason periodic"
    assert lines[6].startswith("\u2014 xinqiao/access-log ")
    assert verify(note, key.public_key()) == body
    with pytest.raises(BadCheckpoint):
        verify(note.replace("\n42\n", "\n43\n"), key.public_key())
    with pytest.raises(BadCheckpoint):
        verify(note, Ed25519PrivateKey.generate().public_key())


def test_the_reason_is_signed() -> None:
    key = Ed25519PrivateKey.generate()
    note = sign(CheckpointBody("xinqiao/access-log", 7, "cd" * 32, "sha256", "periodic"), key)
    with pytest.raises(BadCheckpoint):
        verify(
            note.replace("xinqiao-reason periodic", "xinqiao-reason purge 2020-01-01"),
            key.public_key(),
        )

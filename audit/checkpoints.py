"""Signed checkpoints of the chain head, in the C2SP ``tlog-checkpoint`` / signed-note format.

A checkpoint body is three lines — origin, size (the last sequence number), base64 of the head
hash — plus an extension line naming the chain hash, then a blank line and one signature line::

    xinqiao/access-log
    1234
    q7Kf...=
    xinqiao-chain sha256

    — xinqiao/access-log AAAAAeSig...

The signature line carries the key name and base64(key id ‖ Ed25519 signature), where the key id
is the first four bytes of SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key) as the signed-note spec
defines, so standard note tooling can check the signature. The "root hash" here is the head of a
hash chain, not of a Merkle tree: inclusion proofs are not offered, consistency is checked by
replaying the chain. Copy checkpoints somewhere the database operator cannot rewrite (a WORM
bucket, another organisation's log): a rewritten chain cannot reproduce a signed head.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.access_log import AuditCheckpoint
from domain.base import utcnow

ORIGIN = "xinqiao/access-log"
SIGNATURE_ALG = "ed25519"
DASH = "\u2014"


class BadCheckpoint(ValueError):
    pass


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    seq: int
    head_hash: str
    hash_alg: str
    reason: str = "periodic"
    """periodic | manual | purge — signed, so a verifier can tell a legitimate cut."""
    at: str = ""
    """For a purge: the time of the last purged event (ISO); signed with the rest."""


def key_id(name: str, public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]


def render_body(body: CheckpointBody) -> str:
    head = base64.b64encode(bytes.fromhex(body.head_hash)).decode()
    text = f"{body.origin}\n{body.seq}\n{head}\nxinqiao-chain {body.hash_alg}\n"
    return text + f"xinqiao-reason {body.reason} {body.at}".rstrip() + "\n"


def sign(body: CheckpointBody, key: Ed25519PrivateKey, name: str = ORIGIN) -> str:
    text = render_body(body)
    signature = key.sign(text.encode())
    blob = base64.b64encode(key_id(name, key.public_key()) + signature).decode()
    return f"{text}\n{DASH} {name} {blob}\n"


def verify(note: str, public: Ed25519PublicKey, name: str = ORIGIN) -> CheckpointBody:
    """Parse and check a signed note; raises BadCheckpoint with the reason."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise BadCheckpoint("no signature block")
    text += "\n"
    lines = text.split("\n")
    if len(lines) < 4:
        raise BadCheckpoint("body too short")
    origin, size, head = lines[0], lines[1], lines[2]
    alg, reason, at = "sha256", "periodic", ""
    for extra in lines[3:]:
        if extra.startswith("xinqiao-chain "):
            alg = extra.split(" ", 1)[1]
        elif extra.startswith("xinqiao-reason "):
            reason, _, at = extra.split(" ", 1)[1].partition(" ")
    wanted = key_id(name, public)
    for line in signatures.strip().split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or parts[1] != name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise BadCheckpoint("malformed signature") from None
        if blob[:4] != wanted:
            continue
        try:
            public.verify(blob[4:], text.encode())
        except (InvalidSignature, ValueError):
            raise BadCheckpoint("signature does not verify") from None
        try:
            return CheckpointBody(origin, int(size), base64.b64decode(head).hex(), alg, reason, at)
        except ValueError:
            raise BadCheckpoint("malformed body") from None
    raise BadCheckpoint("no signature by this key")


async def create(
    session: AsyncSession,
    key: Ed25519PrivateKey,
    *,
    reason: str,
    seq: int,
    head_hash: str,
    hash_alg: str = "sha256",
    cut_at: str = "",
) -> AuditCheckpoint:
    """Sign a head (the current one, or the cut of a purge) and store the note."""
    note = sign(CheckpointBody(ORIGIN, seq, head_hash, hash_alg, reason, cut_at), key)
    row = {
        "seq": seq,
        "head_hash": head_hash,
        "created_at": utcnow(),
        "reason": reason,
        "note": note,
    }
    result = await session.execute(insert(AuditCheckpoint).returning(AuditCheckpoint.id), [row])
    return AuditCheckpoint(id=result.scalar_one(), **row)

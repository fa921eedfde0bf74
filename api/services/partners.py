"""Partner agencies' API clients and the persisted queries they (or staff in production) may
run. Secrets are shown once by the caller and stored only as hashes."""

from __future__ import annotations

import datetime
import secrets

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate
from authz.relations import Relation
from domain import models as m
from domain.errors import NotFound

DIRECTORY = frozenset({Relation.DIRECTORY})


async def register_client(
    gate: Gate,
    *,
    name: str,
    unit_id: int,
    secret_hash: str,
    scopes: list[str],
    audience: str,
    allowed_addresses: list[str] | None,
    expires_at: datetime.datetime | None,
) -> int:
    permit = gate.authorize(Entity.PARTNER_CLIENT, Action.CREATE, DIRECTORY)
    if await gate.unit(unit_id) is None:
        raise NotFound(("unit",))
    client = m.PartnerClient(
        client_id=f"pc_{secrets.token_hex(8)}",
        name=name,
        unit_id=unit_id,
        secret_hash=secret_hash,
        scopes=scopes,
        audience=audience,
        allowed_addresses=allowed_addresses,
        created_at=gate.now,
        expires_at=expires_at,
    )
    return await gate.insert(permit, client, ["scopes", "secret_hash"], "create")


async def rotate_secret(gate: Gate, *, client_id: int, secret_hash: str) -> int:
    target = await gate.for_write(m.PartnerClient, client_id)
    target.row.secret_hash = secret_hash
    target.row.secret_rotated_at = gate.now
    gate.wrote(target.permit, target.row, ["secret_hash"], "rotate")
    return client_id


async def revoke_client(gate: Gate, *, client_id: int) -> int:
    target = await gate.for_write(m.PartnerClient, client_id)
    target.row.revoked_at = target.row.revoked_at or gate.now
    gate.wrote(target.permit, target.row, ["revoked_at"], "revoke")
    return client_id


async def register_persisted_query(
    gate: Gate, *, client_id: int | None, sha256: str, name: str | None, document: str
) -> str:
    """A document a client may run (or, without a client, one on the staff allow-list)."""
    if client_id is not None:
        permit = (await gate.for_write(m.PartnerClient, client_id)).permit
    else:
        permit = gate.authorize(Entity.PARTNER_CLIENT, Action.UPDATE, DIRECTORY)
    query = m.PersistedQuery(
        client_id=client_id, sha256=sha256, name=name, document=document, created_at=gate.now
    )
    gate.add(permit, query)
    gate.record_write(permit, Entity.PARTNER_CLIENT, client_id, ["persisted_query"], "register")
    return sha256

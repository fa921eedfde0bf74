"""Administering partner clients and the persisted queries they may run."""

from __future__ import annotations

import datetime
import secrets

import strawberry
from graphql import GraphQLError, parse, validate
from strawberry import relay

from api.graphql import ids
from api.graphql.errors import UserError
from api.graphql.guard import sha256_of
from api.graphql.mutations.base import collect, reload, run
from api.graphql.mutations.persons import _text
from api.graphql.types.base import ctx
from api.graphql.types.partners import PartnerClientType
from api.identity import IdentityError, check_scopes, hash_secret, new_client_secret
from authz.entities import Entity
from authz.gate import Gate
from authz.relations import Relation
from domain import models as m
from domain.errors import DomainError, ErrorCode, NotFound

DIRECTORY = frozenset({Relation.DIRECTORY})


@strawberry.input
class RegisterPartnerClientInput:
    name: str
    unit: relay.GlobalID
    scopes: list[str] = strawberry.field(
        description="read:<class> (basic, identity, contact, case_admin, narrative, id_number, "
        "clinical, family_circumstance) and op:<operation> (read_referred_cases, "
        "record_intervention, create_alert)."
    )
    expires_at: datetime.datetime | None = None
    allowed_addresses: list[str] | None = strawberry.field(
        default=None, description="IP addresses or networks (CIDR) the client may call from."
    )


@strawberry.type
class PartnerClientPayload:
    client: PartnerClientType | None
    client_secret: str | None = strawberry.field(
        default=None, description="Shown once, now; only its hash is stored."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PersistedQueryPayload:
    sha256: str | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _scopes(raw: list[str]) -> list[str]:
    try:
        return check_scopes(raw)
    except IdentityError as exc:
        raise DomainError(ErrorCode.INVALID_SCOPE, exc.message, ("scopes",)) from None


def _addresses(raw: list[str] | None) -> list[str] | None:
    import ipaddress

    if not raw:
        return None
    try:
        return [str(ipaddress.ip_network(a, strict=False)) for a in raw]
    except ValueError:
        raise DomainError(ErrorCode.INVALID, "地址格式无效", ("allowedAddresses",)) from None


@strawberry.type
class PartnerMutations:
    @strawberry.mutation(description="Register a partner agency's client (administrators).")
    async def register_partner_client(
        self, info: strawberry.Info, input: RegisterPartnerClientInput
    ) -> PartnerClientPayload:
        secret = new_client_secret()

        async def action(gate: Gate) -> int:
            name, unit_id, scopes, addresses = collect(
                lambda: _text(input.name, 100, "name", required=True),
                lambda: ids.decode(input.unit, "Unit", "unit")[1],
                lambda: _scopes(input.scopes),
                lambda: _addresses(input.allowed_addresses),
            )
            gate.authorize(Entity.PARTNER_CLIENT, "create", DIRECTORY)
            if await gate.unit(unit_id) is None:
                raise NotFound(("unit",))
            client = m.PartnerClient(
                client_id=f"pc_{secrets.token_hex(8)}",
                name=name,
                unit_id=unit_id,
                secret_hash=hash_secret(secret),
                scopes=scopes,
                audience=ctx(info).settings.token_audience,
                allowed_addresses=addresses,
                created_at=gate.now,
                expires_at=input.expires_at,
            )
            await gate.insert(client, ["scopes", "secret_hash"], "create")
            return client.id

        client_id, errors = await run(info, action)
        return PartnerClientPayload(
            client=await reload(info, PartnerClientType, client_id, "client"),
            client_secret=secret if client_id else None,
            errors=errors,
        )

    @strawberry.mutation(description="Issue a new secret; the old one stops working at once.")
    async def rotate_partner_secret(
        self, info: strawberry.Info, id: relay.GlobalID
    ) -> PartnerClientPayload:
        secret = new_client_secret()

        async def action(gate: Gate) -> int:
            number = ids.decode(id, "PartnerClient")[1]
            client: m.PartnerClient = (await gate.for_write(m.PartnerClient, number, "update")).row
            client.secret_hash = hash_secret(secret)
            client.secret_rotated_at = gate.now
            gate.record_write(Entity.PARTNER_CLIENT, client.id, ["secret_hash"], "rotate")
            return client.id

        client_id, errors = await run(info, action)
        return PartnerClientPayload(
            client=await reload(info, PartnerClientType, client_id, "client"),
            client_secret=secret if client_id else None,
            errors=errors,
        )

    @strawberry.mutation(description="Revoke a client: its tokens stop working on their next use.")
    async def revoke_partner_client(
        self, info: strawberry.Info, id: relay.GlobalID
    ) -> PartnerClientPayload:
        async def action(gate: Gate) -> int:
            number = ids.decode(id, "PartnerClient")[1]
            client: m.PartnerClient = (await gate.for_write(m.PartnerClient, number, "update")).row
            client.revoked_at = client.revoked_at or gate.now
            gate.record_write(Entity.PARTNER_CLIENT, client.id, ["revoked_at"], "revoke")
            return client.id

        client_id, errors = await run(info, action)
        return PartnerClientPayload(
            client=await reload(info, PartnerClientType, client_id, "client"), errors=errors
        )

    @strawberry.mutation(
        description="Register a GraphQL document a client may run (or, without a client, on the "
        "staff allow-list used in production mode). Returns its SHA-256."
    )
    async def register_persisted_query(
        self,
        info: strawberry.Info,
        document: str,
        client: relay.GlobalID | None = None,
        name: str | None = None,
    ) -> PersistedQueryPayload:
        async def action(gate: Gate) -> str:
            client_pk = None if client is None else ids.decode(client, "PartnerClient", "client")[1]
            try:
                problems = validate(info.schema._schema, parse(document))
            except GraphQLError as exc:
                problems = [exc]
            if problems:
                raise DomainError(
                    ErrorCode.INVALID, "查询文档无效：" + problems[0].message, ("document",)
                )
            if client_pk is not None:
                await gate.for_write(m.PartnerClient, client_pk, "update")
            else:
                gate.authorize(Entity.PARTNER_CLIENT, "update", DIRECTORY)
            digest = sha256_of(document)
            gate.add(
                m.PersistedQuery(
                    client_id=client_pk,
                    sha256=digest,
                    name=name,
                    document=document,
                    created_at=gate.now,
                )
            )
            gate.record_write(Entity.PARTNER_CLIENT, client_pk, ["persisted_query"], "register")
            return digest

        digest, errors = await run(info, action)
        return PersistedQueryPayload(sha256=digest, errors=errors)

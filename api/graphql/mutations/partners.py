"""Administering partner clients and the persisted queries they may run."""

from __future__ import annotations

import datetime

import strawberry
from graphql import GraphQLError, parse, validate
from strawberry import relay

from api.graphql import ids
from api.graphql import validators as v
from api.graphql.errors import UserError
from api.graphql.guard import sha256_of
from api.graphql.mutations.shell import reload, run
from api.graphql.types.base import ctx
from api.graphql.types.partners import PartnerClientType
from api.graphql.validators import collect
from api.identity import IdentityError, check_scopes, hash_secret, new_client_secret
from api.services import partners
from authz.gate import Gate
from authz.relations import Relation
from domain.errors import DomainError, ErrorCode

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
                lambda: v.text(input.name, 100, "name", required=True),
                lambda: ids.decode(input.unit, "Unit", "unit")[1],
                lambda: _scopes(input.scopes),
                lambda: _addresses(input.allowed_addresses),
            )
            return await partners.register_client(
                gate,
                name=name,
                unit_id=unit_id,
                secret_hash=hash_secret(secret),
                scopes=scopes,
                audience=ctx(info).settings.token_audience,
                allowed_addresses=addresses,
                expires_at=input.expires_at,
            )

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
            return await partners.rotate_secret(
                gate, client_id=number, secret_hash=hash_secret(secret)
            )

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
            return await partners.revoke_client(gate, client_id=number)

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
            return await partners.register_persisted_query(
                gate, client_id=client_pk, sha256=sha256_of(document), name=name, document=document
            )

        digest, errors = await run(info, action)
        return PersistedQueryPayload(sha256=digest, errors=errors)

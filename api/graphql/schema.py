"""The schema: query and mutation roots, limits and the per-operation extensions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from api.graphql.extensions import AccessLogCommit, SafeErrors
from api.graphql.limits import cost_rule
from api.graphql.mutations.cases import CaseMutations
from api.graphql.mutations.casework import CaseworkMutations
from api.graphql.mutations.emergency import EmergencyMutations
from api.graphql.mutations.partners import PartnerMutations
from api.graphql.mutations.persons import PersonMutations
from api.graphql.mutations.session import SessionMutations
from api.graphql.mutations.units import UnitMutations
from api.graphql.queries import Query
from api.graphql.types import enums  # noqa: F401  (registers the domain enums)
from api.settings import Settings

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


@strawberry.type
class Mutation(
    SessionMutations,
    PersonMutations,
    CaseMutations,
    CaseworkMutations,
    UnitMutations,
    EmergencyMutations,
    PartnerMutations,
):
    pass


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    depth = settings.max_query_depth
    cost = cost_rule(settings.max_query_cost, settings.default_page_size, settings.max_page_size)
    extensions: list[Callable[[], SchemaExtension]] = [
        AccessLogCommit,
        SafeErrors,
        lambda: QueryDepthLimiter(max_depth=depth),
        lambda: MaxAliasesLimiter(max_alias_count=15),
        lambda: MaxTokensLimiter(max_token_count=2000),
        lambda: AddValidationRules([cost]),
    ]
    if settings.production:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.production),
    )


def schema_sdl() -> str:
    return str(build_schema()) + "\n"

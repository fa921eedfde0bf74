"""The schema: query and mutation roots, limits and the per-operation extensions."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from api.graphql.extensions import AccessLogCommit, Observe, SafeErrors
from api.graphql.limits import cost_rule
from api.graphql.mutations.cases import CaseMutations
from api.graphql.mutations.casework import CaseworkMutations, FollowUpMutations
from api.graphql.mutations.emergency import EmergencyMutations
from api.graphql.mutations.partners import PartnerMutations
from api.graphql.mutations.persons import (
    ErasureMutations,
    GuardianMutations,
    PersonMutations,
)
from api.graphql.mutations.screening import ScreeningMutations
from api.graphql.mutations.session import SessionMutations
from api.graphql.mutations.units import UnitMutations
from api.graphql.queries import Query
from api.graphql.subscriptions import Subscription
from api.graphql.types import enums  # noqa: F401  (registers the domain enums)
from api.settings import Settings
from domain.errors import DomainError

log = logging.getLogger("xinqiao.api")

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


@strawberry.type
class Mutation(
    SessionMutations,
    PersonMutations,
    GuardianMutations,
    ErasureMutations,
    CaseMutations,
    CaseworkMutations,
    FollowUpMutations,
    ScreeningMutations,
    UnitMutations,
    EmergencyMutations,
    PartnerMutations,
):
    pass


class XinqiaoSchema(strawberry.Schema):
    """Errors are logged by code, path and exception type only: their messages can carry the
    caller's input (names, ID numbers, passwords), which must never reach a log."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        request_id = getattr(getattr(execution_context, "context", None), "request_id", None)
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, DomainError | StrawberryGraphQLError):
                continue  # the caller's own mistake, answered to the caller
            log.error(
                "unexpected %s at %s (request %s)\n%s",
                type(original).__name__,
                ".".join(map(str, error.path or [])),
                request_id,
                "".join(traceback.format_tb(original.__traceback__)),
            )


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    settings = settings or Settings()
    depth = settings.max_query_depth
    cost = cost_rule(settings.max_query_cost, settings.default_page_size, settings.max_page_size)
    extensions: list[Callable[[], SchemaExtension]] = [
        Observe,
        AccessLogCommit,
        SafeErrors,
        lambda: QueryDepthLimiter(max_depth=depth),
        lambda: MaxAliasesLimiter(max_alias_count=15),
        lambda: MaxTokensLimiter(max_token_count=2000),
        lambda: AddValidationRules([cost]),
    ]
    if settings.production:
        extensions.append(lambda: AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return XinqiaoSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.production),
    )


def schema_sdl() -> str:
    return str(build_schema()) + "\n"

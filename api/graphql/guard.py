"""Checks on an operation before it runs: persisted queries, client scopes, introspection, rate.

* Partner clients may only run documents registered for them (by SHA-256, Apollo style: send
  ``extensions.persistedQuery.sha256Hash`` alone, or the document whose hash is registered).
  Staff run ad-hoc operations, unless the deployment limits them to the staff allow-list.
* A client's operation scopes decide which root mutations it may call at all.
* Partner clients never introspect the schema.
* Each token has a request budget per minute.

All of it happens before parsing results in any database work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, validate
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.http import GraphQLRequestData

from api.ratelimit import Limiter

CLIENT_MUTATIONS = {
    "recordIntervention": "op:record_intervention",
    "raiseAlert": "op:create_alert",
}
CLIENT_QUERY_SCOPE = "op:read_referred_cases"
ALERT_FOLLOW_UP_QUERIES = frozenset({"alerts"})
"""What a write-only client may query: the alerts it raised (the gate shows it no others)."""


def refusal(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def sha256_of(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def resolve_document(
    request: GraphQLRequestData, registry: Mapping[str, str] | None
) -> GraphQLError | None:
    """Fill in a persisted document, or refuse one that is not registered (when a registry
    applies). Mutates ``request.query``."""
    persisted = (request.extensions or {}).get("persistedQuery") or {}
    wanted = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    if registry is None:
        if request.query is None and wanted:
            return refusal("PERSISTED_QUERY_NOT_FOUND", "未注册的查询 (persisted query not found)")
        return None
    if request.query is not None:
        digest = sha256_of(request.query)
        if wanted and wanted != digest:
            return refusal("PERSISTED_QUERY_MISMATCH", "查询内容与哈希不符 (hash mismatch)")
        wanted = digest
    if not wanted or wanted not in registry:
        return refusal(
            "PERSISTED_QUERY_NOT_ALLOWED",
            "只允许运行为本客户端注册的查询 (only registered operations may run)",
        )
    request.query = registry[wanted]
    return None


def check_client_operation(
    schema: GraphQLSchema, document: str, operations: frozenset[str]
) -> GraphQLError | None:
    try:
        tree = parse(document)
    except GraphQLError:
        return None  # strawberry reports syntax errors itself
    if validate(schema, tree, [NoSchemaIntrospectionCustomRule]):
        return refusal("FORBIDDEN", "客户端不能查询schema (introspection is disabled for clients)")
    fragments = {d.name.value: d for d in tree.definitions if isinstance(d, FragmentDefinitionNode)}
    for definition in tree.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.operation.value == "mutation":
            for name in _root_fields(definition.selection_set, fragments, set()):
                need = CLIENT_MUTATIONS.get(name)
                if need is None or need not in operations:
                    return refusal("FORBIDDEN", f"客户端无权调用 {name}")
        elif CLIENT_QUERY_SCOPE not in operations:
            roots = set(_root_fields(definition.selection_set, fragments, set()))
            if not ("op:create_alert" in operations and roots <= ALERT_FOLLOW_UP_QUERIES):
                return refusal("FORBIDDEN", "客户端无权查询 (read scope missing)")
    return None


def _root_fields(
    selections: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> list[str]:
    """Root field names, through inline fragments and fragment spreads."""
    names: list[str] = []
    for sel in selections.selections:
        if isinstance(sel, FieldNode):
            names.append(sel.name.value)
        elif isinstance(sel, InlineFragmentNode):
            names += _root_fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
            fragment = fragments.get(sel.name.value)
            if fragment is None:
                names.append(f"...{sel.name.value}")  # unknown: refused
            else:
                names += _root_fields(fragment.selection_set, fragments, seen | {sel.name.value})
    return names


async def check_rate(limiter: Limiter | None, key: str | None) -> GraphQLError | None:
    if limiter is None or key is None or await limiter.allow(key):
        return None
    return refusal("RATE_LIMITED", "请求过于频繁，请稍后再试 (rate limit exceeded)")


def operation_fingerprint(document: str) -> str | None:
    """SHA-256 of the document's tokens with every string literal blanked: it identifies the
    operation for auditors, but a password or name written inline cannot be guessed from it."""
    from graphql.language import Lexer, Source, TokenKind

    parts: list[str] = []
    try:
        lexer = Lexer(Source(document))
        token = lexer.advance()
        while token.kind is not TokenKind.EOF:
            blank = token.kind in (TokenKind.STRING, TokenKind.BLOCK_STRING)
            parts.append(f"{token.kind.value}:{'' if blank else token.value or ''}")
            token = lexer.advance()
    except GraphQLError:
        return None
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

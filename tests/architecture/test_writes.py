"""Structural rules for writes (issue 13): the mirror of the read rules in ``test_layers``.

Writes go GraphQL mutation → mutation shell → use case in ``api.services`` → gate (permit,
insert/wrote). These checks fail a change that reaches the session from the API, forges a
permit, or writes a mutation that does not go through the shell.
"""

from __future__ import annotations

import ast

from tests.architecture.test_layers import ROOT, python_files


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_nothing_in_the_api_layer_touches_a_session_directly() -> None:
    """Only the gate adds, flushes or deletes rows for a request; ``api.graphql`` and
    ``api.services`` never see a session (operator CLI code uses named system sessions)."""
    offenders = []
    for path in python_files("api/graphql", "api/services"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"session", "_session", "_db"}:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_permits_are_issued_only_by_the_gate() -> None:
    offenders = []
    for path in python_files("api", "audit", "domain", "authz"):
        rel = str(path.relative_to(ROOT))
        if rel in {"authz/gate/types.py", "authz/gate/facade.py"}:
            continue
        for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(call.func, "id", getattr(call.func, "attr", None))
            if name in {"Permit", "issue_permit"}:
                offenders.append(f"{rel}:{call.lineno}")
    assert offenders == []


def test_every_mutation_runs_in_the_shell() -> None:
    """Each ``@strawberry.mutation`` resolver calls ``mutate`` or ``run`` from the shell, so it
    gets the one transaction, rollback, typed-error and reload envelope."""
    unshelled = []
    checked = 0
    for path in python_files("api/graphql/mutations"):
        if path.name == "session.py":
            continue  # sign-in runs before there is a subject or a gate (api.identity)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.AsyncFunctionDef):
                continue
            decorated = any(
                "mutation" in ast.unparse(d) and "strawberry" in ast.unparse(d)
                for d in fn.decorator_list
            )
            if not decorated:
                continue
            checked += 1
            names = {getattr(c.func, "id", None) for c in _calls(fn)}
            if not names & {"mutate", "run"}:
                unshelled.append(f"{path.relative_to(ROOT)}:{fn.name}")
    assert checked >= 29
    assert unshelled == []


def test_use_cases_never_commit() -> None:
    offenders = []
    for path in python_files("api/services"):
        for call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if getattr(call.func, "attr", None) in {"commit", "rollback"}:
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert offenders == []

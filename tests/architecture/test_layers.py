"""Structural rules that keep privacy enforcement in one place (Polar-style AST checks)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import strawberry

import api.graphql
from api.graphql.schema import SCHEMA_FILE, Mutation, schema_sdl
from api.graphql.types.base import Gated
from domain.base import Protected
from domain.classification import field_classes

ROOT = Path(__file__).resolve().parents[2]


def python_files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_import_contracts() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_resolver_reaches_the_database_except_through_the_gate() -> None:
    forbidden = {
        "domain.session.session_factory",
        "domain.session.system_session",
        "domain.session.create_engine",
        "sqlalchemy.ext.asyncio",
        "sqlalchemy.orm.Session",
        "domain.session.ROW_SCOPE",
    }
    offenders = {
        str(p.relative_to(ROOT)): sorted(imports_of(p) & forbidden)
        for p in python_files("api/graphql")
        if imports_of(p) & forbidden
    }
    assert offenders == {}


def test_every_graphql_module_imports() -> None:
    for module in pkgutil.walk_packages(api.graphql.__path__, "api.graphql."):
        importlib.import_module(module.name)


def test_row_scope_marker_is_set_only_by_the_gate() -> None:
    users = [
        str(p.relative_to(ROOT))
        for p in python_files("api", "authz", "audit", "domain", "migrations")
        if "ROW_SCOPE" in p.read_text(encoding="utf-8")
    ]
    assert sorted(users) == ["authz/gate/plans.py", "domain/session.py"]


def test_system_sessions_only_in_operator_paths() -> None:
    allowed = {
        "api/auth.py",
        "api/cli/main.py",
        "api/cli/demo.py",
        "api/cli/audit.py",
        "api/identity.py",
        "api/cli/identity.py",
        "api/jobs.py",
        "api/delivery.py",  # undelivered high-risk notifications escalate their alert
        "api/live.py",
        "api/keyring.py",  # the feed reads alert ids only; each delivery goes through the gate
        "domain/session.py",
    }
    users = {
        str(p.relative_to(ROOT))
        for p in python_files("api", "authz", "audit", "domain")
        if "system_session" in p.read_text(encoding="utf-8")
    }
    assert users <= allowed, users - allowed


def test_resolvers_never_read_classified_attributes_off_rows() -> None:
    """In a GraphQL type, ``visible.row.<attr>`` is allowed only for the model's unclassified keys;
    classified values must come through ``gate.reveal`` (so they are decided and logged)."""
    from domain import models as m

    offenders = []
    checked = 0
    for path in python_files("api/graphql/types"):
        for cls in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(cls, ast.ClassDef):
                continue
            model_name = next(
                (
                    node.value.attr
                    for node in cls.body
                    if isinstance(node, ast.AnnAssign)
                    and isinstance(node.target, ast.Name)
                    and node.target.id == "model"
                    and isinstance(node.value, ast.Attribute)
                ),
                None,
            )
            if model_name is None:
                continue
            checked += 1
            classified = set(field_classes(getattr(m, model_name)))
            for node in ast.walk(cls):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "row"
                    and node.attr in classified
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .row.{node.attr}")
    assert checked >= 12
    assert offenders == []


def test_object_types_over_protected_models_are_gated() -> None:
    schema = strawberry.Schema(query=api.graphql.queries.Query, mutation=Mutation)
    checked = 0
    for type_def in schema.schema_converter.type_map.values():
        cls = getattr(type_def.definition, "origin", None)
        model = getattr(cls, "model", None)
        if isinstance(model, type) and issubclass(model, Protected):
            assert issubclass(cls, Gated), cls
            fields = {f.python_name for f in type_def.definition.fields}
            assert "redacted_fields" in fields, cls
            checked += 1
    assert checked >= 12, "every protected model has a gated type"


def test_every_mutation_returns_typed_errors() -> None:
    for field in Mutation.__strawberry_definition__.fields:  # type: ignore[attr-defined]
        payload = field.type
        names = {f.python_name for f in payload.__strawberry_definition__.fields}
        assert "errors" in names, field.python_name


def test_schema_file_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), (
        "schema.graphql is stale: run `xinqiao schema export`"
    )


def test_only_pycasbin_is_installed() -> None:
    from importlib.metadata import PackageNotFoundError, version

    assert version("pycasbin")
    try:
        version("casbin")
    except PackageNotFoundError:
        return
    raise AssertionError("both 'casbin' and 'pycasbin' are installed; they share an import name")


def test_privacy_matrix_is_current() -> None:
    from authz.matrix import MATRIX_FILE, render
    from authz.policy import Policy

    assert MATRIX_FILE.read_text(encoding="utf-8") == render(Policy()), (
        "docs/privacy-matrix.md is stale: run `xinqiao policy matrix`"
    )


def test_deny_lines_are_unconditional() -> None:
    """Conditional denies cannot work with per-condition evaluation; overlays tighten instead."""
    from authz.policy import Policy

    for line in Policy().lines:
        if line[5] == "deny":
            assert line[4] == "*", line

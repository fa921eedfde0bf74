"""Operation names as telemetry labels: only names the executed document has, no long digit
runs, and a bounded number of distinct labels per process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from graphql import parse

from api.graphql import extensions


def _ran(document: str, provided: str | None) -> SimpleNamespace:
    return SimpleNamespace(operation_name=provided, graphql_document=parse(document))


def test_a_name_is_used_only_if_the_document_has_it() -> None:
    doc = "query Counted { a } query Listed { b }"
    assert extensions.operation_name(_ran(doc, "Listed")) == "Listed"
    assert extensions.operation_name(_ran(doc, "张三")) is None
    assert extensions.operation_name(SimpleNamespace(operation_name="X")) is None


def test_long_digit_runs_are_redacted_even_when_split() -> None:
    doc = "query p138_0013_8000 { a }"
    assert extensions.operation_label(_ran(doc, "p138_0013_8000")) == "redacted"


def test_distinct_labels_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extensions, "_labels", set())
    monkeypatch.setattr(extensions, "MAX_LABELS", 3)
    names = [f"Op{letter}" for letter in "ABCDE"]
    labels = [extensions.operation_label(_ran(f"query {n} {{ a }}", n)) for n in names]
    assert labels == ["OpA", "OpB", "OpC", "other", "other"]
    assert extensions.operation_label(_ran("query OpA { a }", "OpA")) == "OpA", "known names stay"

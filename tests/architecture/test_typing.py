"""Type checking is a gate (``make test`` runs mypy over api, authz, audit and domain); this keeps
its escape hatch honest: every ``# type: ignore`` names its error code and says why on the line."""

from __future__ import annotations

import re

from tests.architecture.test_layers import ROOT, python_files

IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
EXPLAINED = re.compile(r"^\[[-a-z, ]+\]\s+#\s*\S")


def test_every_type_ignore_has_a_code_and_a_reason() -> None:
    bare = []
    for path in python_files("api", "authz", "audit", "domain"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = IGNORE.search(line)
            if found and not EXPLAINED.match(found.group("rest").strip()):
                bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert bare == []

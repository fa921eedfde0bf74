"""Render the policy file as a reviewable table: ``docs/privacy-matrix.md``.

Generated, never edited by hand; a test fails when it is stale (``xinqiao policy matrix``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from authz.entities import Entity
from authz.policy import Policy
from domain.classification import FieldClass
from domain.staff import Role

MATRIX_FILE = Path(__file__).resolve().parents[1] / "docs" / "privacy-matrix.md"

HEADER = """# Privacy matrix

Generated from `authz/policy.csv` by `xinqiao policy matrix`; do not edit by hand.

Each cell lists the relations (and, in brackets, the record conditions) under which the role may
read that field class of that entity. `—` means never. **Deny** marks an explicit deny, which
overrides any grant. Overlays in `authz/overlays.py` tighten this further: minors show only basic
data unless the viewer is assigned, under an emergency grant, or their own school counsellor; a
sensitive category shows only to the role that owns it.
"""


def _cell(entries: set[str], denied: bool) -> str:
    if denied:
        return "**deny**"
    return ", ".join(sorted(entries)) if entries else "—"


def render(policy: Policy) -> str:
    reads: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    denies: set[tuple[str, str, str]] = set()
    writes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for role, entity, action, relation, condition, effect in policy.lines:
        where = relation if condition == "*" else f"{relation} ({condition})"
        if action.startswith("read:"):
            wanted = action[5:]
            classes = [c.value for c in FieldClass] if wanted == "*" else [wanted]
            for fc in classes:
                if effect == "deny":
                    denies.add((role, entity, fc))
                else:
                    reads[(role, entity, fc)].add(where)
        elif effect == "allow":
            writes[(role, entity)].add(f"{action} [{where}]")
    out = [HEADER]
    classes = [c.value for c in FieldClass]
    for entity in Entity:
        roles = [r.value for r in Role if any((r.value, entity.value, c) in reads for c in classes)]
        if not roles:
            continue
        out.append(f"\n## {entity.value}\n")
        out.append("| role | " + " | ".join(classes) + " |")
        out.append("|---" * (len(classes) + 1) + "|")
        for role in roles:
            cells = [
                _cell(reads.get((role, entity.value, c), set()), (role, entity.value, c) in denies)
                for c in classes
            ]
            out.append(f"| {role} | " + " | ".join(cells) + " |")
    out.append("\n## Writes and other actions\n")
    out.append("| role | entity | actions [relation (condition)] |")
    out.append("|---|---|---|")
    for (role, entity), actions in sorted(writes.items()):
        out.append(f"| {role} | {entity} | " + "; ".join(sorted(actions)) + " |")
    return "\n".join(out) + "\n"

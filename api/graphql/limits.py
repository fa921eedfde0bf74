"""A static cost estimate for operations: page sizes × nesting, refused above a limit.

The cost is the number of objects the operation could return in the worst case: a list field
multiplies what is selected under it by its page size (``first``, or the default page size; a
variable counts as the maximum). Scalars are free. Checked at validation time, so an expensive
operation is refused before any database work.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

# Every list field and its default page size (the schema's default for ``first``; None: the
# configured default page size of connections).
LIST_FIELDS: dict[str, int | None] = {
    "persons": None,
    "families": None,
    "cases": None,
    "interventions": None,
    "alerts": None,
    "referrals": None,
    "units": None,
    "accessEvents": None,
    "personAccessHistory": None,
    "emergencyAccesses": None,
    "partnerClients": None,
    "nodes": None,
    "lookupPersons": 10,
    "members": 20,
    "assignments": 20,
    "assessments": 20,
    "statusHistory": 50,
    "guardians": 20,
    "consents": 20,
    "followUps": 20,
    "dueFollowUps": None,
}


def cost_rule(max_cost: int, default_page: int, max_page: int) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.fragments: dict[str, FragmentDefinitionNode] = {
                d.name.value: d
                for d in context.document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = self._cost(node.selection_set, 1, set())
            if cost > max_cost:
                self.report_error(
                    GraphQLError(
                        f"查询代价过高（估计 {cost}，上限 {max_cost}），请减少每页条数或嵌套层级 "
                        "(operation too expensive)",
                        node,
                        extensions={
                            "code": "QUERY_TOO_EXPENSIVE",
                            "cost": cost,
                            "maxCost": max_cost,
                        },
                    )
                )

        def _page(self, field: FieldNode) -> int:
            for arg in field.arguments or ():
                if arg.name.value == "first":
                    if isinstance(arg.value, IntValueNode):
                        return max(1, int(arg.value.value))
                    return max_page
                if arg.name.value == "ids":
                    return max_page
            return LIST_FIELDS.get(field.name.value) or default_page

        def _cost(self, selections: SelectionSetNode | None, mult: int, seen: set[str]) -> int:
            if selections is None:
                return 0
            total = 0
            for sel in selections.selections:
                if isinstance(sel, FieldNode):
                    if sel.selection_set is None:
                        continue  # a scalar
                    inner = mult * self._page(sel) if sel.name.value in LIST_FIELDS else mult
                    total += inner + self._cost(sel.selection_set, inner, seen)
                elif isinstance(sel, InlineFragmentNode):
                    total += self._cost(sel.selection_set, mult, seen)
                elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                    fragment = self.fragments.get(sel.name.value)
                    if fragment is not None:
                        total += self._cost(fragment.selection_set, mult, seen | {sel.name.value})
            return total

    return CostLimit

"""The privacy gate (see ``authz.gate.facade``): the one enforcement point, as a small package.

``facade`` (the ``Gate`` the API holds) · ``decisions`` (pure: grants, readable classes) ·
``plans`` (pure: relations and conditions compiled to SQL) · ``reading`` (pages, counts, lookups,
children) · ``reveal`` (the field path) · ``cursors`` · ``sealer`` (keys, seal, open, shred) ·
``writes`` (permits and the flush check) · ``types`` (the proofs and values it hands out).
"""

from authz.gate.facade import Gate
from authz.gate.types import (
    Filter,
    Forbidden,
    Found,
    GateStats,
    Order,
    Page,
    Permit,
    Revealed,
    UnloggedWrite,
    Visible,
    Writable,
)

__all__ = [
    "Filter",
    "Forbidden",
    "Found",
    "Gate",
    "GateStats",
    "Order",
    "Page",
    "Permit",
    "Revealed",
    "UnloggedWrite",
    "Visible",
    "Writable",
]

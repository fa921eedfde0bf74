"""Erasure (PIPL art. 47): crypto-shredding a person."""

from __future__ import annotations

from authz.actions import Action
from authz.entities import Entity
from authz.gate import Gate
from authz.relations import Relation
from domain import models as m


async def erase_person(gate: Gate, *, person_id: int, reason: str) -> int:
    """Destroy a person's data key, so every field sealed under it is unreadable for good (here
    and in any backup once the key-encryption key that wrapped it is retired), and clear their
    blind indexes so no lookup finds them. What remains is the skeleton: that a person and
    their cases existed, dates, units, risk levels.

    Erasing needs no sight of the record (an administrator handles the request without reading
    it): the grant is checked against the directory."""
    permit = gate.authorize(Entity.PERSON, Action.ERASE, {Relation.DIRECTORY}, record_id=person_id)
    await gate.locate(permit, m.Person, person_id, "id")
    await gate.erase(permit, "person", person_id)
    gate.record_write(
        permit,
        Entity.PERSON,
        person_id,
        ["data_key", "name_index", "id_number_index", "phone_index"],
        f"erase: {reason}"[:100],
        person_id=person_id,
    )
    return person_id

"""Who is asking. Built once per request by authentication; the gate trusts nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from domain.classification import FieldClass
from domain.disclosure import Actor
from domain.staff import Role


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A subject proven to be a staff account with a unit: what staff-only use cases take
    (``Subject.as_staff``), so "staff only" is a type, not a runtime assert."""

    id: int
    unit_id: int
    username: str


@dataclass(frozen=True, slots=True)
class Subject:
    staff_id: int | None
    username: str
    unit_id: int | None
    unit_path: str | None
    """Materialised path of the staff member's own unit (team membership)."""
    jurisdiction_path: str | None
    """Path of the area the unit serves. ``None`` means no jurisdiction, never "everything"."""
    roles: frozenset[Role]
    token_id: str | None = None
    token_expires: int | None = None
    client_id: str | None = None
    """A partner agency's API client, when the token is a client's (then ``staff_id`` is None)."""
    client_pk: int | None = None
    class_cap: frozenset[FieldClass] | None = None
    """A client's scopes: it never reads a class outside them, whatever else would allow it."""
    operations: frozenset[str] = frozenset()
    """A client's operation scopes (``op:record_intervention``...)."""
    read_relations: frozenset[str] | None = None
    """When set, fields are readable only through these relations, whatever else the policy
    allows: a write-only client (``op:create_alert`` without a read scope) reads back only the
    alerts it raised (``creator``)."""

    @classmethod
    def anonymous(cls) -> Subject:
        return cls(None, "anonymous", None, None, None, frozenset())

    def as_staff(self) -> StaffMember | None:
        """The staff member behind this subject, or None for a partner client or anonymous."""
        if self.staff_id is None or self.unit_id is None or self.client_id is not None:
            return None
        return StaffMember(self.staff_id, self.unit_id, self.username)

    @property
    def authenticated(self) -> bool:
        return self.staff_id is not None or self.client_id is not None

    @property
    def actor(self) -> Actor:
        return Actor(
            staff_id=self.staff_id,
            username=self.username,
            unit_id=self.unit_id,
            roles=tuple(sorted(self.roles)),
            token_id=self.token_id,
        )

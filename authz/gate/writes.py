"""Writes safe by construction: the mirror of the read guard in ``domain.session``.

Every protected row a request adds, changes or deletes must have been handed to the gate under a
``Permit`` (``Gate.add``, ``Gate.insert``, ``Gate.for_write``...), and must have a write event in
the access log before the transaction commits. The session refuses otherwise:

* at flush, a new, changed or deleted protected row with no permit raises ``UnloggedWrite``;
* at commit, a row that was written under a permit but never logged raises it too.

Operator sessions (named tasks outside requests, ``domain.session``) are exempt: they are named,
and the architecture tests keep them out of request paths.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from authz.gate.types import Permit, UnloggedWrite
from domain.access_log import AccessEvent
from domain.base import Protected
from domain.session import is_operator_session

LEDGER = "xinqiao_write_ledger"


class WriteLedger:
    """The rows one request may write, and which of them have a logged write event."""

    def __init__(self) -> None:
        self._permits: dict[int, tuple[object, Permit]] = {}
        self._written: dict[int, object] = {}
        self._logged: set[int] = set()

    def permit(self, row: object, permit: Permit) -> None:
        self._permits[id(row)] = (row, permit)

    def logged(self, row: object) -> None:
        self._logged.add(id(row))

    def check_flush(self, session: Session) -> None:
        for row in _changed(session):
            if id(row) not in self._permits:
                raise UnloggedWrite(
                    f"{type(row).__name__} written without a permit: use the gate's authorize "
                    "or for_write, then add/insert/wrote"
                )
            self._written[id(row)] = row

    def check_commit(self, session: Session) -> None:
        self.check_flush(session)
        unlogged = sorted(
            {type(r).__name__ for k, r in self._written.items() if k not in self._logged}
        )
        if unlogged:
            raise UnloggedWrite(f"written without a write event in the access log: {unlogged}")

    def clear(self) -> None:
        self._permits.clear()
        self._written.clear()
        self._logged.clear()


def ledger_of(session: Session) -> WriteLedger:
    ledger = session.info.get(LEDGER)
    if ledger is None:
        ledger = session.info[LEDGER] = WriteLedger()
    assert isinstance(ledger, WriteLedger)
    return ledger


def _changed(session: Session) -> list[Any]:
    rows = []
    for row in chain(session.new, session.dirty, session.deleted):
        if not isinstance(row, Protected) or isinstance(row, AccessEvent):
            continue  # the access log writes itself (audit.log), with core inserts
        if row in session.dirty and not session.is_modified(row):
            continue
        rows.append(row)
    return rows


def _exempt(session: Session) -> bool:
    return is_operator_session(session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if not _exempt(session):
        ledger_of(session).check_flush(session)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not _exempt(session):
        ledger_of(session).check_commit(session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _reset(session: Session) -> None:
    ledger = session.info.get(LEDGER)
    if isinstance(ledger, WriteLedger):
        ledger.clear()

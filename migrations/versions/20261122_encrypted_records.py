"""The rest of the personal text becomes ciphertext: birth dates (the year stays in the clear),
family circumstances and volunteer notes (under the family's key), and the subject's status-change
reasons, intervention notes and outcomes, alert summaries, assessment answers, override reasons
and dropped follow-up reasons (under the subject's key, so ``person_id`` is copied onto the rows
that lacked it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22

Like 0010 and 0012 it refuses to run over rows it would have to encrypt (no deployment holds
them yet; encrypting needs keys a migration does not hold), and to go back below itself once
they are sealed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.base import Id
from domain.sealing import Encrypted

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED: tuple[tuple[str, str, sa.types.TypeEngine, bool], ...] = (
    # table, column, type before, nullable before
    ("persons", "birth_date", sa.Date(), True),
    ("families", "circumstances", sa.Text(), True),
    ("volunteer_links", "note", sa.String(200), True),
    ("case_status_changes", "reason", sa.Text(), True),
    ("interventions", "notes", sa.Text(), True),
    ("interventions", "outcome", sa.Text(), True),
    ("alerts", "summary", sa.Text(), True),
    ("assessments", "answers", sa.JSON(), False),
    ("referrals", "override_reason", sa.Text(), True),
    ("follow_ups", "dropped_reason", sa.String(500), True),
)
SUBJECT_COPIED = {
    # table: person_id nullable (an intervention may be a family's, with no case)
    "case_status_changes": False,
    "interventions": True,
    "referrals": False,
    "follow_ups": False,
}
TABLES = sorted({table for table, *_ in SEALED} | set(SUBJECT_COPIED))


def _refuse_if_rows(why: str) -> None:
    bind = op.get_bind()
    for table in TABLES:
        count = bind.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        if count:
            raise RuntimeError(f"{count} rows in {table}: {why}")


def upgrade() -> None:
    _refuse_if_rows("their plaintext would need encrypting (see this revision's docstring)")
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table in SUBJECT_COPIED:
                batch_op.add_column(sa.Column("person_id", Id, nullable=SUBJECT_COPIED[table]))
                batch_op.create_index(batch_op.f(f"ix_{table}_person_id"), ["person_id"])
                batch_op.create_foreign_key(
                    batch_op.f(f"fk_{table}_person_id_persons"), "persons", ["person_id"], ["id"]
                )
            if table == "persons":
                batch_op.add_column(sa.Column("birth_year", sa.Integer(), nullable=True))
            for t, column, old, _ in SEALED:
                if t == table:
                    batch_op.alter_column(
                        column,
                        existing_type=old,
                        type_=Encrypted(),
                        nullable=True,
                        postgresql_using="NULL::bytea",
                    )


def downgrade() -> None:
    _refuse_if_rows("going below 0013 would need the keys to decrypt their text")
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for t, column, old, nullable in SEALED:
                if t == table:
                    batch_op.alter_column(
                        column,
                        existing_type=Encrypted(),
                        type_=old,
                        nullable=nullable,
                        postgresql_using="NULL",
                    )
            if table == "persons":
                batch_op.drop_column("birth_year")
            if table in SUBJECT_COPIED:
                batch_op.drop_constraint(
                    batch_op.f(f"fk_{table}_person_id_persons"), type_="foreignkey"
                )
                batch_op.drop_index(batch_op.f(f"ix_{table}_person_id"))
                batch_op.drop_column("person_id")

"""Persons' name, ID number, phone and address become ciphertexts, with blind indexes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22

There is no deployment with plaintext persons yet, so this revision refuses to run over existing
persons rather than carry an in-migration encryption path that would need the keys: load the
data again (demo) after upgrading, or encrypt with a tool written for that deployment.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.sealing import Encrypted

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = (("name", 50), ("id_number", 18), ("phone", 20), ("address", 200))
INDEXED = ("name", "id_number", "phone")


def _refuse_if_persons(why: str) -> None:
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM persons")).scalar_one()
    if count:
        raise RuntimeError(f"{count} persons on file: {why}")


def upgrade() -> None:
    _refuse_if_persons(
        "their plaintext names and numbers would need encrypting, and this revision encrypts "
        "new data only (see its docstring)"
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.add_column(sa.Column(f"{column}_index", sa.LargeBinary(32), nullable=True))
        for column, length in SEALED:
            batch_op.alter_column(
                column,
                existing_type=sa.String(length),
                type_=Encrypted(),
                nullable=True,
                postgresql_using="NULL::bytea",
            )
        batch_op.drop_index(batch_op.f("ix_persons_id_number"))
        for column in INDEXED:
            batch_op.create_index(
                batch_op.f(f"ix_persons_{column}_index"), [f"{column}_index"], unique=False
            )


def downgrade() -> None:
    _refuse_if_persons(
        "going below 0010 would turn their ciphertexts back into plaintext columns, which needs "
        "the keys a migration does not hold"
    )
    with op.batch_alter_table("persons", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.drop_index(batch_op.f(f"ix_persons_{column}_index"))
        batch_op.create_index(batch_op.f("ix_persons_id_number"), ["id_number"], unique=False)
        for column, length in SEALED:
            batch_op.alter_column(
                column,
                existing_type=Encrypted(),
                type_=sa.String(length),
                nullable=column != "name",
                postgresql_using="NULL",
            )
        for column in INDEXED:
            batch_op.drop_column(f"{column}_index")

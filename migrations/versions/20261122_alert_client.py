"""Alerts raised by a partner system remember which client raised them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_client_id", ID, nullable=True))
        batch_op.create_index(
            batch_op.f("ix_alerts_created_by_client_id"), ["created_by_client_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_created_by_client_id_partner_clients"),
            "partner_clients",
            ["created_by_client_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_alerts_created_by_client_id_partner_clients"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_alerts_created_by_client_id"))
        batch_op.drop_column("created_by_client_id")

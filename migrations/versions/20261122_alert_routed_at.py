"""Alerts record when they last reached a team (raised or escalated), for the live feed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.base import UTCDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("routed_at", UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE alerts SET routed_at = raised_at")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("routed_at", existing_type=UTCDateTime(timezone=True), nullable=False)
        batch_op.create_index(batch_op.f("ix_alerts_routed_at"), ["routed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_routed_at"))
        batch_op.drop_column("routed_at")

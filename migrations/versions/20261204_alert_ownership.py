"""Alerts reach every unit of their tier's team and close when handled (issue 14).

``alert_targets``: the units an alert was addressed to (a high-risk alert goes to the whole joint
team at once). ``closed_at``, ``resolution`` and the sealed ``dismissed_reason``: an alert is
handled by opening a case from it (``case_id`` links them) or by dismissing it with a reason.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.base import UTCDateTime
from domain.sealing import Encrypted

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_targets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("unit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_targets_alert_id_alerts")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_alert_targets_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_targets")),
    )
    with op.batch_alter_table("alert_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_targets_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_targets_unit_id"), ["unit_id"], unique=False)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("dismissed_reason", Encrypted(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("dismissed_reason")
        batch_op.drop_column("resolution")
        batch_op.drop_column("closed_at")
    with op.batch_alter_table("alert_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_targets_unit_id"))
        batch_op.drop_index(batch_op.f("ix_alert_targets_alert_id"))
    op.drop_table("alert_targets")

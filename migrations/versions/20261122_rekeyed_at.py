"""Data-key re-encryption and the KEK schedule: when each data key's material was last replaced
(and whether a re-encryption pass still has to reach it), and when a key-encryption-key version
stopped wrapping any data key (the start of its backup-retention wait before retirement).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.base import UTCDateTime

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rekeyed_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("rekey_pending", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("key_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("emptied_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_versions", schema=None) as batch_op:
        batch_op.drop_column("emptied_at")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_column("rekey_pending")
        batch_op.drop_column("rekeyed_at")

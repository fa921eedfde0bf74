"""Cases' presenting problem, support plan, diagnosis and closing outcome become ciphertexts
under the subject's data key.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22

Like 0010, it refuses to run over existing cases (no deployment holds plaintext ones yet) and to
go back below itself once cases are sealed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.sealing import Encrypted

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = (
    ("presenting_problem", sa.Text()),
    ("support_plan", sa.Text()),
    ("diagnosis", sa.String(200)),
    ("closure_outcome", sa.Text()),
)


def _refuse_if_cases(why: str) -> None:
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
    if count:
        raise RuntimeError(f"{count} cases on file: {why}")


def upgrade() -> None:
    _refuse_if_cases("their plaintext text would need encrypting (see 0010's docstring)")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for column, old in SEALED:
            batch_op.alter_column(
                column, existing_type=old, type_=Encrypted(), postgresql_using="NULL::bytea"
            )


def downgrade() -> None:
    _refuse_if_cases("going below 0012 would need the keys to decrypt their text")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for column, old in SEALED:
            batch_op.alter_column(
                column, existing_type=Encrypted(), type_=old, postgresql_using="NULL"
            )

"""School screening: campaigns, and assessments that belong to a person without a case.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from domain.base import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "screening_campaigns",
        sa.Column("id", ID, nullable=False),
        sa.Column("school_unit_id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "instrument",
            sa.Enum("phq9", "gad7", "epds", "ad8", name="instrument", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by_staff_id", ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_staff_id"],
            ["staff.id"],
            name=op.f("fk_screening_campaigns_created_by_staff_id_staff"),
        ),
        sa.ForeignKeyConstraint(
            ["school_unit_id"],
            ["units.id"],
            name=op.f("fk_screening_campaigns_school_unit_id_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_campaigns")),
    )
    with op.batch_alter_table("screening_campaigns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_screening_campaigns_school_unit_id"), ["school_unit_id"], unique=False
        )

    # person_id arrives nullable, is filled from each assessment's case, then made required.
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", ID, nullable=True))
        batch_op.add_column(sa.Column("campaign_id", ID, nullable=True))
        batch_op.add_column(sa.Column("grade", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("class_name", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("flagged", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE assessments SET person_id = "
        "(SELECT cases.subject_id FROM cases WHERE cases.id = assessments.case_id)"
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.alter_column("person_id", existing_type=ID, nullable=False)
        batch_op.alter_column("case_id", existing_type=ID, nullable=True)
        batch_op.create_index(
            batch_op.f("ix_assessments_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assessments_person_id"), ["person_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_assessments_campaign_id"), ["campaign_id", "person_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_assessments_person_id_persons"), "persons", ["person_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_assessments_campaign_id_screening_campaigns"),
            "screening_campaigns",
            ["campaign_id"],
            ["id"],
        )


def downgrade() -> None:
    op.execute("DELETE FROM assessments WHERE case_id IS NULL")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_assessments_campaign_id_screening_campaigns"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_assessments_person_id_persons"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_assessments_campaign_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_assessments_person_id"))
        batch_op.drop_index(batch_op.f("ix_assessments_campaign_id"))
        batch_op.alter_column("case_id", existing_type=ID, nullable=False)
        batch_op.drop_column("flagged")
        batch_op.drop_column("class_name")
        batch_op.drop_column("grade")
        batch_op.drop_column("campaign_id")
        batch_op.drop_column("person_id")

    with op.batch_alter_table("screening_campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screening_campaigns_school_unit_id"))
    op.drop_table("screening_campaigns")

"""Tamper-evident access log: hash chain, chain head, signed checkpoints, append-only triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Existing access events (from before the chain) are chained here, in id order, with the frozen
encoding below, so an upgraded database verifies from its first event.
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64
# Frozen copy of audit.chain.CHAINED_FIELDS at this revision.
CHAINED = (
    "seq",
    "occurred_at",
    "request_id",
    "trace_id",
    "operation",
    "operation_hash",
    "actor_staff_id",
    "actor_username",
    "actor_unit_id",
    "actor_roles",
    "token_id",
    "purpose",
    "kind",
    "outcome",
    "entity",
    "entity_id",
    "person_id",
    "fields",
    "redacted",
    "field_classes",
    "relations",
    "changes",
    "break_glass",
    "reason",
    "client_address",
    "user_agent",
    "hash_alg",
    "prev_hash",
)

NEW_COLUMNS = [
    sa.Column("seq", BigId, nullable=True),
    sa.Column("trace_id", sa.String(length=32), nullable=True),
    sa.Column("operation_hash", sa.String(length=64), nullable=True),
    sa.Column("outcome", sa.String(length=16), nullable=True),
    sa.Column("person_id", BigId, nullable=True),
    sa.Column("changes", sa.JSON(), nullable=True),
    sa.Column("break_glass", sa.Boolean(), nullable=True),
    sa.Column("user_agent", sa.String(length=200), nullable=True),
    sa.Column("hash_alg", sa.String(length=16), nullable=True),
    sa.Column("prev_hash", sa.String(length=64), nullable=True),
    sa.Column("hash", sa.String(length=64), nullable=True),
]
REQUIRED = {
    "seq": BigId,
    "outcome": sa.String(16),
    "break_glass": sa.Boolean(),
    "hash_alg": sa.String(16),
    "prev_hash": sa.String(64),
    "hash": sa.String(64),
}

PG_TRIGGERS = [
    """CREATE FUNCTION xinqiao_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'access_events' THEN
    IF EXISTS (SELECT 1 FROM audit_purge_permits WHERE OLD.seq < before_seq) THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$ LANGUAGE plpgsql""",
    """CREATE FUNCTION xinqiao_audit_no_truncate() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only (TRUNCATE refused)', TG_TABLE_NAME;
END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER access_events_append_only BEFORE UPDATE OR DELETE ON access_events
  FOR EACH ROW EXECUTE FUNCTION xinqiao_audit_append_only()""",
    """CREATE TRIGGER access_events_no_truncate BEFORE TRUNCATE ON access_events
  FOR EACH STATEMENT EXECUTE FUNCTION xinqiao_audit_no_truncate()""",
    """CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION xinqiao_audit_append_only()""",
    """CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION xinqiao_audit_no_truncate()""",
]
SQLITE_TRIGGERS = [
    """CREATE TRIGGER access_events_no_update BEFORE UPDATE ON access_events
       BEGIN SELECT RAISE(ABORT, 'access_events is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER access_events_no_delete BEFORE DELETE ON access_events
       WHEN NOT EXISTS (SELECT 1 FROM audit_purge_permits WHERE OLD.seq < before_seq)
       BEGIN SELECT RAISE(ABORT, 'access_events is append-only (DELETE refused)'); END""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only (DELETE refused)'); END""",
]
DROP_PG = [
    "DROP TRIGGER IF EXISTS access_events_append_only ON access_events",
    "DROP TRIGGER IF EXISTS access_events_no_truncate ON access_events",
    "DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints",
    "DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints",
    "DROP FUNCTION IF EXISTS xinqiao_audit_append_only()",
    "DROP FUNCTION IF EXISTS xinqiao_audit_no_truncate()",
]
DROP_SQLITE = [
    "DROP TRIGGER IF EXISTS access_events_no_update",
    "DROP TRIGGER IF EXISTS access_events_no_delete",
    "DROP TRIGGER IF EXISTS audit_checkpoints_no_update",
    "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete",
]


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _backfill() -> str:
    """Chain the events that predate the chain; returns (and stores) the head."""
    conn = op.get_bind()
    events = sa.table(
        "access_events", *(sa.column(c) for c in dict.fromkeys(("id", *CHAINED, "hash")))
    )
    rows = conn.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        record = {c: _plain(row[c]) for c in CHAINED}
        when = row["occurred_at"]  # untyped here: SQLite gives text, PostgreSQL a datetime
        when = datetime.fromisoformat(when) if isinstance(when, str) else when
        record["occurred_at"] = _plain(when)
        relations = record["relations"] if isinstance(record["relations"], list) else []
        record["break_glass"] = "emergency" in relations
        if record.get("person_id") is None and row["entity"] == "person":
            record["person_id"] = row["entity_id"]
        record.update(
            seq=seq,
            prev_hash=prev,
            hash_alg="sha256",
            outcome="denied"
            if row["kind"] == "denied"
            else ("partly_redacted" if record["redacted"] else "permitted"),
        )
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(body.encode()).hexdigest()
        conn.execute(
            events.update()
            .where(events.c.id == row["id"])
            .values(
                seq=seq,
                prev_hash=prev,
                hash_alg="sha256",
                hash=digest,
                break_glass=record["break_glass"],
                person_id=record["person_id"],
                outcome=record["outcome"],
            )
        )
        prev = digest
    head = sa.table(
        "audit_chain_head",
        sa.column("id"),
        sa.column("seq"),
        sa.column("head_hash"),
        sa.column("hash_alg"),
    )
    conn.execute(head.insert().values(id=1, seq=len(rows), head_hash=prev, hash_alg="sha256"))
    return prev


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("hash_alg", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, nullable=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_seq"), ["seq"], unique=False)
    op.create_table(
        "audit_purge_permits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("before_seq", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_purge_permits")),
    )
    with op.batch_alter_table("access_events", schema=None) as batch_op:
        for column in NEW_COLUMNS:
            batch_op.add_column(column)
    _backfill()
    with op.batch_alter_table("access_events", schema=None) as batch_op:
        for name, type_ in REQUIRED.items():
            batch_op.alter_column(name, existing_type=type_, nullable=False)
        batch_op.create_index(batch_op.f("ix_access_events_actor_unit_id"), ["actor_unit_id"])
        batch_op.create_index(batch_op.f("ix_access_events_actor_username"), ["actor_username"])
        batch_op.create_index(batch_op.f("ix_access_events_break_glass"), ["break_glass"])
        batch_op.create_index("ix_access_events_person", ["person_id", "occurred_at"])
        batch_op.create_unique_constraint(batch_op.f("uq_access_events_seq"), ["seq"])
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in PG_TRIGGERS if pg else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for statement in DROP_PG if pg else DROP_SQLITE:
        op.execute(statement)
    with op.batch_alter_table("access_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_access_events_seq"), type_="unique")
        batch_op.drop_index("ix_access_events_person")
        batch_op.drop_index(batch_op.f("ix_access_events_break_glass"))
        batch_op.drop_index(batch_op.f("ix_access_events_actor_username"))
        batch_op.drop_index(batch_op.f("ix_access_events_actor_unit_id"))
        for column in reversed(NEW_COLUMNS):
            batch_op.drop_column(column.name)
    op.drop_table("audit_purge_permits")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_seq"))
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")

"""The initial schema: inbox, statuses, conversations, turns, history, outbox, jobs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen copy of `whatsagent.store.schema` as first released; later changes go in new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# INTEGER PRIMARY KEY on SQLite (its rowid), BIGSERIAL-like elsewhere.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("seq", Id, primary_key=True, autoincrement=True, comment="arrival order"),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("provider_id", sa.String(255), nullable=False, comment="wamid / MessageSid: the dedup key"),
        sa.Column("conversation", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("triggers", sa.Boolean, nullable=False, comment="whether this message starts a turn"),
        sa.Column("payload", sa.Text, nullable=False, comment="the neutral message as JSON"),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("turn_id", sa.BigInteger, nullable=True, comment="the turn that consumed it; NULL = pending"),
        sa.UniqueConstraint("channel", "provider_id", name="uq_inbox_provider_id"),
    )
    op.create_index("ix_inbox_pending", "inbox", ["conversation", "turn_id", "seq"])

    op.create_table(
        "statuses",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("channel", "message_id", "status", name="uq_statuses_message_status"),
    )

    op.create_table(
        "conversations",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("user_key", sa.String(255), nullable=False),
        sa.Column("wa_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("user_name", sa.String(255), nullable=True),
        sa.Column("session", sa.Integer, nullable=False, server_default=sa.text("0"), comment="bumped by /new"),
        sa.Column("last_inbound_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )

    op.create_table(
        "turns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("conversation", sa.String(400), nullable=False),
        sa.Column("session", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_turns_open", "turns", ["conversation", "status"])

    op.create_table(
        "history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("conversation", sa.String(400), nullable=False),
        sa.Column("session", sa.Integer, nullable=False),
        sa.Column("turn_id", sa.BigInteger, nullable=False),
        sa.Column("messages", sa.Text, nullable=False, comment="pydantic-ai messages of this turn, as JSON"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("turn_id"),
    )
    op.create_index("ix_history_conversation", "history", ["conversation", "session", "id"])

    op.create_table(
        "outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("turn_id", sa.BigInteger, nullable=True),
        sa.Column("conversation", sa.String(400), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False, comment="the neutral outbound message as JSON"),
        sa.Column("status", sa.String(16), nullable=False, comment="pending, sending, sent, failed"),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.Column(
            "delivery",
            sa.String(16),
            nullable=True,
            comment="sent, delivered, read, failed (from webhooks)",
        ),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("error_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_outbox_turn", "outbox", ["turn_id", "position"])
    op.create_index("ix_outbox_provider_id", "outbox", ["provider_message_id"])

    op.create_table(
        "jobs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("lock", sa.String(400), nullable=True),
        sa.Column("queueing_lock", sa.String(400), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, comment="todo or doing; finished jobs are deleted"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("scheduled_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jobs_lock", "jobs", ["lock", "id"])


def downgrade() -> None:
    for table in ("jobs", "outbox", "history", "turns", "conversations", "statuses", "inbox"):
        op.drop_table(table)

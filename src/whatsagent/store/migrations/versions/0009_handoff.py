"""Human handoff: who answers a conversation (the bot or a person), what operators did, what each turn did.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

`conversations.mode` is ``bot`` (the agent answers), ``human`` (an operator took it over: the bot stays
quiet) or ``waiting`` (the agent or the user asked for a person; the bot stays quiet until someone takes
it or hands it back). `conversations.seen_at` is when an operator last read it (for the unread count).
`operator_actions` records who did what, when. `turn_traces` holds each turn's model and tool calls
(spans with timing), for the console.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column(
                "mode",
                sa.String(16),
                nullable=False,
                server_default=sa.text("'bot'"),
                comment="bot, human (taken over by an operator) or waiting (for a human)",
            )
        )
        batch.add_column(sa.Column("mode_reason", sa.Text, nullable=True, comment="why it left bot mode"))
        batch.add_column(sa.Column("mode_changed_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("seen_at", sa.Float, nullable=True, comment="when an operator last read it"))
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("conversation", sa.String(400), nullable=False),
        sa.Column("operator", sa.String(255), nullable=False, comment="who (as the operator named themselves)"),
        sa.Column("action", sa.String(32), nullable=False, comment="takeover, reply, hand_back, retry, discard..."),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_operator_actions_conversation", "operator_actions", ["conversation", "id"])
    op.create_table(
        "turn_traces",
        sa.Column("turn_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("spans", sa.Text, nullable=False, comment="the turn's model and tool calls with timing, as JSON"),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("turn_traces")
    op.drop_index("ix_operator_actions_conversation", table_name="operator_actions")
    op.drop_table("operator_actions")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("seen_at")
        batch.drop_column("mode_changed_at")
        batch.drop_column("mode_reason")
        batch.drop_column("mode")

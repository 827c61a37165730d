"""User memories: one row per fact per user and agent.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(100), nullable=False, comment="the agent that remembers"),
        sa.Column("user_ref", sa.String(255), nullable=False, comment="the user's key, or its keyed hash when asked"),
        sa.Column("fact", sa.Text, nullable=False, comment="one short fact about the user"),
        sa.Column("source", sa.String(16), nullable=False, comment="capture (after a turn) or tool (the agent asked)"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_memories_user", "memories", ["agent", "user_ref", "id"])


def downgrade() -> None:
    op.drop_index("ix_memories_user", table_name="memories")
    op.drop_table("memories")

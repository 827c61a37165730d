"""The 24-hour window: the provider's word that a window closed, and parked messages found fast.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04

`conversations.window_closed_at` keeps the `last_inbound_at` whose window the provider reported closed
(131047, Twilio 63016), so no free-form message is tried again until the user writes. The index on
`outbox (conversation, status)` finds a conversation's parked messages and its delivery list.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column(
                "window_closed_at",
                sa.Float,
                nullable=True,
                comment="the last_inbound_at whose 24-hour window the provider reported closed (131047, 63016)",
            )
        )
    op.create_index("ix_outbox_conversation", "outbox", ["conversation", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_conversation", table_name="outbox")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("window_closed_at")

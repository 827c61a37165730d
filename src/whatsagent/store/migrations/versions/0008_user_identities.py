"""One user, one conversation, whichever identifiers a message carries: wa_id ↔ BSUID links.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02

Since April 2026 WhatsApp names users by a business-scoped user id (BSUID) as well as the number, and
may withhold the number of users with a username. `user_identities` maps every identifier seen on a
channel to the key of the user's conversation (`whatsagent.identity`). Existing conversations are
linked from what they recorded, so a user who wrote before keeps their history and memories.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_identities",
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column(
            "identifier", sa.String(255), primary_key=True, comment="a wa_id or a business-scoped user id (BSUID)"
        ),
        sa.Column("user_key", sa.String(255), nullable=False, comment="the key of the user's one conversation"),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    for column in ("user_key", "wa_id", "user_id"):
        op.execute(
            "INSERT INTO user_identities (channel, identifier, user_key, created_at) "
            f"SELECT channel, {column}, user_key, created_at FROM conversations WHERE {column} IS NOT NULL "
            "ORDER BY created_at "
            "ON CONFLICT DO NOTHING"
        )


def downgrade() -> None:
    op.drop_table("user_identities")

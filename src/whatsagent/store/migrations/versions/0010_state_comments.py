"""State columns say exactly the states the code writes (comments only; PostgreSQL keeps them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

`turns.status` gains ``human`` (messages held for a person) and ``operator`` (an operator's reply), both
written since revision 0009; `outbox.status` gains ``discarded`` (an operator gave a row up) and
`outbox.delivery` ``played`` (a voice message the user played). `operator_actions.action` lists every
action recorded; `conversations.window_closed_at` no longer names provider codes (the channel says a
refusal means the window closed). SQLite stores no column comments: nothing changes there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (table, column, type, nullable, comment before, comment after)
COMMENTS = (
    (
        "turns",
        "status",
        sa.String(16),
        False,
        "running, answered, sent, failed (see turns.TurnState)",
        "running, answered, sent, failed, human, operator (see turns.TurnState)",
    ),
    (
        "outbox",
        "status",
        sa.String(16),
        False,
        "pending, sent, failed, parked",
        "pending, sent, failed, parked, discarded (see outbox.OutboxState)",
    ),
    (
        "outbox",
        "delivery",
        sa.String(16),
        True,
        "sent, delivered, read, failed (from webhooks)",
        "sent, delivered, read, played, failed (from status webhooks; see outbox.Delivery)",
    ),
    (
        "conversations",
        "mode",
        sa.String(16),
        False,
        "bot, human (taken over by an operator) or waiting (for a human)",
        "bot, human (taken over by an operator) or waiting (for a human) (see conversations.ConversationMode)",
    ),
    (
        "conversations",
        "window_closed_at",
        sa.Float(),
        True,
        "the last_inbound_at whose 24-hour window the provider reported closed (131047, 63016)",
        "the last_inbound_at whose 24-hour window the channel reported closed (a window_closed refusal)",
    ),
    (
        "operator_actions",
        "action",
        sa.String(32),
        False,
        "takeover, reply, hand_back, retry, discard...",
        "takeover, hand_back, reply, retry, discard, edit_memory, erase_memory or ask_for_person",
    ),
)


def _comment(before: int, after: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps no column comments
    for entry in COMMENTS:
        table, column, type_, nullable = entry[:4]
        op.alter_column(
            table,
            column,
            existing_type=type_,
            existing_nullable=nullable,
            existing_comment=entry[before],  # type: ignore[arg-type]
            comment=entry[after],  # type: ignore[arg-type]
        )


def upgrade() -> None:
    _comment(4, 5)


def downgrade() -> None:
    _comment(5, 4)

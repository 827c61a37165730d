"""Lanes owned by fence, not by time: who owns a conversation's lane, and whether they live.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

`lanes` holds a fencing token per conversation, bumped by every claim and checked by every write and send
of a turn; `lane_holders` the processes that may own lanes (on PostgreSQL each holds an advisory lock on
its id for as long as its connection lives, which is how another process tells it is gone), and
`lane_workers` which holder vouches for which procrastinate worker.
`outbox.attempted_at` marks a row whose send was started, so that after a crash only such a row is in
doubt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


TURN_STATUS = "running, answered, sent, failed (see turns.TurnState)"
TURN_ERROR = "why the turn was set aside (a poison turn), if it was"
OUTBOX_STATUS = "pending, sent, failed, parked"
ATTEMPTED_AT = "when a send of a pending row was last started: only such a row may have gone out unrecorded"


def upgrade() -> None:
    op.create_table(
        "lanes",
        sa.Column("conversation", sa.String(400), primary_key=True),
        sa.Column("holder", sa.Integer, nullable=True, comment="the lane_holders row that owns the lane; NULL = free"),
        sa.Column(
            "token",
            sa.BigInteger,
            nullable=False,
            comment="fencing token: bumped by every claim, checked by every write",
        ),
        sa.Column("claimed_at", sa.Float, nullable=True),
    )
    held = sa.text("holder IS NOT NULL")
    op.create_index("ix_lanes_holder", "lanes", ["holder"], postgresql_where=held, sqlite_where=held)
    op.create_table(
        "lane_holders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, comment="host and pid, for people reading the table"),
        sa.Column("started_at", sa.Float, nullable=False),
    )
    op.create_table(
        "lane_workers",
        sa.Column("worker_id", sa.BigInteger, primary_key=True, autoincrement=False, comment="a procrastinate worker"),
        sa.Column("holder", sa.Integer, nullable=False, comment="the lane holder that proves it alive"),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("attempted_at", sa.Float, nullable=True, comment=ATTEMPTED_AT))
        batch.alter_column("status", existing_type=sa.String(16), existing_nullable=False, comment=OUTBOX_STATUS)
    with op.batch_alter_table("turns") as batch:
        batch.alter_column("status", existing_type=sa.String(16), existing_nullable=False, comment=TURN_STATUS)
        batch.alter_column("error", existing_type=sa.Text, existing_nullable=True, comment=TURN_ERROR)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("attempted_at")
    op.drop_table("lane_workers")
    op.drop_table("lane_holders")
    op.drop_table("lanes")

"""The one schema, for SQLite and PostgreSQL alike (SQLAlchemy Core).

Tables follow the flow: `inbox` (what arrived, deduped) → `conversations` (one per agent, channel and
user) → `turns` (one agent run each, a small state machine) → `history` (append-only, one row per turn)
→ `outbox` (what to send, written before any send) ← `statuses` (what became of it). `memories` holds
facts about each user, one row per fact. `jobs` is the embedded work queue. `lanes` says who owns each
conversation's lane (a fencing token every turn write checks), `lane_holders` the processes that may
own one, `lane_workers` which holder vouches for which work-queue worker (`whatsagent.fence`).

Each table's statements live in one module, its owner: `inbox` and `statuses` in `whatsagent.inbox`,
`conversations` in `whatsagent.conversations`, `turns` in `whatsagent.turns`, `history` in
`whatsagent.history`, `outbox` in `whatsagent.outbox`, `memories` in `whatsagent.agents.memory`, `jobs` in
`whatsagent.queue.embedded`, the lane tables in `whatsagent.fence`, `user_identities` in
`whatsagent.identity`, `operator_actions` in `whatsagent.handoff`, `turn_traces` in `whatsagent.tracing`.
Every other module calls them. A status column's comment lists exactly the states its owner writes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# An auto-incrementing 64-bit key: INTEGER PRIMARY KEY on SQLite (its rowid), BIGSERIAL-like elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

inbox = Table(
    "inbox",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True, comment="arrival order"),
    Column("channel", String(100), nullable=False),
    Column("provider_id", String(255), nullable=False, comment="wamid / MessageSid: the dedup key"),
    Column("conversation", String(400), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("triggers", Boolean, nullable=False, comment="whether this message starts a turn"),
    Column("payload", Text, nullable=False, comment="the neutral message as JSON"),
    Column("received_at", Float, nullable=False),
    Column("turn_id", BigInteger, nullable=True, comment="the turn that consumed it; NULL = pending"),
    UniqueConstraint("channel", "provider_id", name="uq_inbox_provider_id"),
)
Index("ix_inbox_pending", inbox.c.conversation, inbox.c.turn_id, inbox.c.seq)
# Only the messages no turn has taken yet: the recovery sweep finds them without reading the whole inbox.
_WAITING = text("turn_id IS NULL")
Index("ix_inbox_waiting", inbox.c.conversation, postgresql_where=_WAITING, sqlite_where=_WAITING)

statuses = Table(
    "statuses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(100), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("channel", "message_id", "status", name="uq_statuses_message_status"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("channel", String(100), nullable=False),
    Column("account", String(100), nullable=False),
    Column("user_key", String(255), nullable=False),
    Column("wa_id", String(64), nullable=True),
    Column("user_id", String(255), nullable=True),
    Column("user_name", String(255), nullable=True),
    Column("session", Integer, nullable=False, server_default=text("0"), comment="bumped by /new"),
    Column("last_inbound_at", Float, nullable=False),
    Column(
        "window_closed_at",
        Float,
        nullable=True,
        comment="the last_inbound_at whose 24-hour window the channel reported closed (a window_closed refusal)",
    ),
    Column("created_at", Float, nullable=False),
    Column(
        "mode",
        String(16),
        nullable=False,
        server_default=text("'bot'"),
        comment="bot, human (taken over by an operator) or waiting (for a human) (see conversations.ConversationMode)",
    ),
    Column("mode_reason", Text, nullable=True, comment="why it left bot mode"),
    Column("mode_changed_at", Float, nullable=True),
    Column("seen_at", Float, nullable=True, comment="when an operator last read it"),
)

turns = Table(
    "turns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation", String(400), nullable=False),
    Column("session", Integer, nullable=False),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="running, answered, sent, failed, human, operator (see turns.TurnState)",
    ),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text, nullable=True, comment="why the turn was set aside (a poison turn), if it was"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_turns_open", turns.c.conversation, turns.c.status)
# Only the turns still running or sending: the recovery sweep finds them without reading every turn.
_UNFINISHED = text("status IN ('running', 'answered')")
Index("ix_turns_unfinished", turns.c.conversation, postgresql_where=_UNFINISHED, sqlite_where=_UNFINISHED)

history = Table(
    "history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation", String(400), nullable=False),
    Column("session", Integer, nullable=False),
    Column("turn_id", BigInteger, nullable=False, unique=True),
    Column("messages", Text, nullable=False, comment="pydantic-ai messages of this turn, as JSON"),
    Column("created_at", Float, nullable=False),
)
Index("ix_history_conversation", history.c.conversation, history.c.session, history.c.id)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("turn_id", BigInteger, nullable=True),
    Column("conversation", String(400), nullable=False),
    Column("position", Integer, nullable=False),
    Column("message", Text, nullable=False, comment="the neutral outbound message as JSON"),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="pending, sent, failed, parked, discarded (see outbox.OutboxState)",
    ),
    Column("provider_message_id", String(255), nullable=True),
    Column(
        "delivery",
        String(16),
        nullable=True,
        comment="sent, delivered, read, played, failed (from status webhooks; see outbox.Delivery)",
    ),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column(
        "attempted_at",
        Float,
        nullable=True,
        comment="when a send of a pending row was last started: only such a row may have gone out unrecorded",
    ),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_outbox_turn", outbox.c.turn_id, outbox.c.position)
Index("ix_outbox_provider_id", outbox.c.provider_message_id)
Index("ix_outbox_conversation", outbox.c.conversation, outbox.c.status)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("task", String(100), nullable=False),
    Column("args", Text, nullable=False),
    Column("lock", String(400), nullable=True),
    Column("queueing_lock", String(400), nullable=True),
    Column("status", String(16), nullable=False, comment="todo or doing; finished jobs are deleted"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("scheduled_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_jobs_lock", jobs.c.lock, jobs.c.id)

memories = Table(
    "memories",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("agent", String(100), nullable=False, comment="the agent that remembers"),
    Column("user_ref", String(255), nullable=False, comment="the user's key, or its keyed hash when asked"),
    Column("fact", Text, nullable=False, comment="one short fact about the user"),
    Column("source", String(16), nullable=False, comment="capture (after a turn) or tool (the agent asked)"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_memories_user", memories.c.agent, memories.c.user_ref, memories.c.id)

lanes = Table(
    "lanes",
    metadata,
    Column("conversation", String(400), primary_key=True),
    Column("holder", Integer, nullable=True, comment="the lane_holders row that owns the lane; NULL = free"),
    Column("token", BigInteger, nullable=False, comment="fencing token: bumped by every claim, checked by every write"),
    Column("claimed_at", Float, nullable=True),
)
# The lanes one holder owns: each worker looks for its own stale ones every few seconds.
_HELD = text("holder IS NOT NULL")
Index("ix_lanes_holder", lanes.c.holder, postgresql_where=_HELD, sqlite_where=_HELD)

lane_holders = Table(
    "lane_holders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, comment="host and pid, for people reading the table"),
    Column("started_at", Float, nullable=False),
)

lane_workers = Table(
    "lane_workers",
    metadata,
    Column("worker_id", BigInteger, primary_key=True, autoincrement=False, comment="a procrastinate worker"),
    Column("holder", Integer, nullable=False, comment="the lane holder that proves it alive"),
)

user_identities = Table(
    "user_identities",
    metadata,
    Column("channel", String(100), primary_key=True),
    Column("identifier", String(255), primary_key=True, comment="a wa_id or a business-scoped user id (BSUID)"),
    Column("user_key", String(255), nullable=False, comment="the key of the user's one conversation"),
    Column("created_at", Float, nullable=False),
)

# Human handoff (`whatsagent.handoff`): what operators did, and what each turn did (for the console).
operator_actions = Table(
    "operator_actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("conversation", String(400), nullable=False),
    Column("operator", String(255), nullable=False, comment="who (as the operator named themselves)"),
    Column(
        "action",
        String(32),
        nullable=False,
        comment="takeover, hand_back, reply, retry, discard, edit_memory, erase_memory or ask_for_person",
    ),
    Column("detail", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_operator_actions_conversation", operator_actions.c.conversation, operator_actions.c.id)

turn_traces = Table(
    "turn_traces",
    metadata,
    Column("turn_id", BigInteger, primary_key=True, autoincrement=False),
    Column("spans", Text, nullable=False, comment="the turn's model and tool calls with timing, as JSON"),
    Column("created_at", Float, nullable=False),
)

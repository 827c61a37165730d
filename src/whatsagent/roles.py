"""What one whatsagent process does: receive webhooks (`web`), run turns and sends (`worker`), or both
(`all`, the default).

On SQLite one process does everything with the embedded queue. On PostgreSQL, work goes through
procrastinate, so any number of web and worker processes on any number of machines share it:

    whatsagent serve myapp:os --role web       # behind the load balancer that Meta's webhooks reach
    whatsagent serve myapp:os --role worker    # as many as the turns need

The role comes from `AgentOS(role=...)`, ``--role`` or ``WHATSAGENT_ROLE``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from whatsagent.conversations import wake_job
from whatsagent.errors import ConfigurationError
from whatsagent.fence import Holder
from whatsagent.lanes import open_conversations
from whatsagent.queue import EmbeddedQueue, Handler, JobSpec, Wanted, WorkQueue
from whatsagent.store.database import Database

if TYPE_CHECKING:
    from whatsagent.queue.procrastinate import WorkerPolicy


class Role(enum.Enum):
    WEB = "web"
    """Webhooks only: verify, store, defer a wake-up, acknowledge. Stateless; runs no jobs."""
    WORKER = "worker"
    """Turns, sends and other jobs; serves only ``/health`` and ``/ready``."""
    ALL = "all"
    """Both, in one process (the only role SQLite allows)."""

    @property
    def receives_webhooks(self) -> bool:
        return self is not Role.WORKER

    @property
    def runs_jobs(self) -> bool:
        return self is not Role.WEB


def resolve_role(role: str | Role | None, database_url: str) -> Role:
    """The role asked for (argument, else ``WHATSAGENT_ROLE``, else `all`), checked against the store."""
    raw = role if role is not None else os.environ.get("WHATSAGENT_ROLE") or "all"
    try:
        resolved = raw if isinstance(raw, Role) else Role(raw.strip().lower())
    except ValueError:
        raise ConfigurationError(f"role {raw!r} is not one of web, worker, all") from None
    if resolved is not Role.ALL and database_url.startswith("sqlite"):
        raise ConfigurationError(
            f"role {resolved.value!r} needs PostgreSQL: SQLite serves one process, which must be both web and "
            "worker (role 'all'). To run separate web and worker processes set "
            "WHATSAGENT_DATABASE_URL=postgresql+psycopg://user@host/db."
        )
    return resolved


def work_queue(
    db: Database,
    database_url: str,
    role: Role,
    *,
    concurrency: int,
    policy: WorkerPolicy | None = None,
    holder: Holder | None = None,
) -> WorkQueue:
    """The embedded queue on SQLite; procrastinate on PostgreSQL (jobs run only if the role runs jobs;
    `holder` is what proves this worker alive to the others, see `whatsagent.fence`)."""
    if not db.shared:
        return EmbeddedQueue(db, concurrency=concurrency)
    from whatsagent.queue.procrastinate import ProcrastinateQueue

    return ProcrastinateQueue(database_url, work=role.runs_jobs, concurrency=concurrency, policy=policy, holder=holder)


async def start_work(
    queue: WorkQueue,
    role: Role,
    db: Database,
    handlers: Mapping[str, Handler],
    *,
    recover: Callable[[], Awaitable[object]],
) -> None:
    """Start the queue for this role: a worker runs `handlers` and first wakes every conversation a
    previous run left unfinished; a queue whose jobs can go missing between processes (procrastinate)
    also sweeps for conversations that lost their wake-up (a web process that died between its commit
    and its defer)."""
    await queue.start(handlers if role.runs_jobs else {}, wanted=_wanted_wakes(db))
    if role.runs_jobs:
        await recover()


def _wanted_wakes(db: Database) -> Wanted:
    async def wanted() -> Sequence[JobSpec]:
        return [wake_job(conversation) for conversation in await db.read(open_conversations)]

    return wanted

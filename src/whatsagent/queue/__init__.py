"""Where turns, sends and memory jobs wait to run: the seam and its two implementations.

`base` is the contract; `embedded` runs jobs in the serving process over the store (SQLite, one
machine); `procrastinate` runs them with procrastinate on PostgreSQL (web and worker processes on many
machines). The procrastinate queue is imported only where it is used.
"""

from whatsagent.queue.base import Handler, JobSpec, RetryPolicy, Wanted, WorkQueue
from whatsagent.queue.embedded import EmbeddedQueue

__all__ = ["EmbeddedQueue", "Handler", "JobSpec", "RetryPolicy", "Wanted", "WorkQueue"]

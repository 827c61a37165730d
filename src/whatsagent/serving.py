"""How `AgentOS.serve` runs uvicorn: bounded for a server that strangers can reach.

uvicorn's defaults trust the client: no deadline for request headers, no limit on connections. A bot's
webhook URL is public, so `serve` sets:

- the soft limit on open files raised to the hard limit (at most `MAX_FILES`): the usual 1,024 lets a
  thousand idle connections stop the server accepting anything;
- ``limit_concurrency``: half the open-file limit, at most `LIMIT_CONCURRENCY` (512 under the usual
  1,024, leaving room for the database and the outbound HTTP pool). Past this many open connections
  (or running requests) uvicorn answers 503 at once, before the app runs; Meta and Twilio retry a 503.
- ``timeout_keep_alive`` = `KEEP_ALIVE`: an idle keep-alive connection is closed after 5 seconds.
- a header deadline (`HEADER_TIMEOUT`, our protocol class below): a connection whose request line and
  headers are not complete that many seconds after it opened (or after its previous response) is
  closed. This is what stops slowloris, which keeps connections open by trickling header bytes.
- ``h11_max_incomplete_event_size`` = `MAX_HEADER_BYTES`: headers larger than 16 KB are refused.

Bodies have their own deadline and a process-wide memory budget (`whatsagent.channels.body`). Every
setting can be overridden: ``os.serve(limit_concurrency=2000)``. In production, a reverse proxy in front
(nginx, a cloud load balancer) adds what one process cannot: per-client limits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

LIMIT_CONCURRENCY = 4096
MAX_FILES = 65536
KEEP_ALIVE = 5
HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 16 * 1024


def server_options(**overrides: Any) -> dict[str, Any]:
    """uvicorn options for a public webhook server; `overrides` win (``header_timeout`` included)."""
    header_timeout = float(overrides.pop("header_timeout", HEADER_TIMEOUT))
    options: dict[str, Any] = {
        "limit_concurrency": max(64, min(LIMIT_CONCURRENCY, raise_file_limit() // 2)),
        "timeout_keep_alive": KEEP_ALIVE,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
    protocol = header_deadline_protocol(header_timeout)
    if protocol is not None:
        options["http"] = protocol
    options.update(overrides)
    return options


def raise_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (at most `MAX_FILES`); the new limit."""
    try:
        import resource
    except ImportError:  # Windows
        return 2 * LIMIT_CONCURRENCY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit from %d", soft)
    return soft if soft != resource.RLIM_INFINITY else MAX_FILES


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # uvicorn without its [standard] extra: h11 has no deadline of ours
    HeaderDeadline: type[asyncio.Protocol] | None = None
else:

    class _HeaderDeadline(HttpToolsProtocol):
        """uvicorn's httptools protocol, closing a connection whose headers are not in after
        `header_timeout` seconds. A module-level class: `serve(reload=True)` hands the server's settings to
        a child process by pickling them."""

        header_timeout = 10.0
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                log.debug("closed a connection whose request headers took over %gs", self.header_timeout)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    HeaderDeadline = _HeaderDeadline


def header_deadline_protocol(seconds: float) -> type[asyncio.Protocol] | None:
    """The protocol closing connections whose request headers take over `seconds` (one server per
    process: the setting is the process's)."""
    if HeaderDeadline is not None:
        HeaderDeadline.header_timeout = seconds  # type: ignore[attr-defined]
    return HeaderDeadline

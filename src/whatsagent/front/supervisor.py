"""The bot's process keeps its front running: started before the bot loads (both load in parallel),
started again if it dies, stopped (after it handed over what it spooled) when the bot stops."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

QUICK_FAILURES = 3
"""A front that exits this many times in a row within `QUICK` seconds of starting (its port is taken,
the app does not import) stops the server: restarting it would not help."""
QUICK = 10.0
STOP_TIMEOUT = 20.0


class FrontProcess:
    def __init__(self, command: list[str], *, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a front is never spawned after `stop` looked for one to stop
        self._thread: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        # The child is spawned by this thread, which lives as long as the supervision: the front's
        # "end with my parent" signal (PR_SET_PDEATHSIG) follows the thread that started it.
        started = threading.Event()
        self._thread = threading.Thread(target=self._supervise, args=(started,), name="whatsagent-front", daemon=True)
        self._thread.start()
        started.wait()

    def _supervise(self, started: threading.Event) -> None:
        quick = 0
        while not self._stopping.is_set():
            began = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    break
                # A session of its own: Ctrl-C in a terminal reaches the bot's process only, which stops
                # the front after it handed over its webhooks.
                proc = self._proc = subprocess.Popen(self.command, env=self.env, start_new_session=True)
            started.set()
            code = proc.wait()
            if self._stopping.is_set():
                return
            quick = quick + 1 if time.monotonic() - began < QUICK else 0
            if quick >= QUICK_FAILURES:
                log.error("the front exited %d times in a row right after starting (code %s): stopping", quick, code)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self.restarts += 1
            log.error("the front exited (code %s); starting it again (its spooled webhooks are kept)", code)
            if self._stopping.wait(min(5.0, 2.0**quick)):
                return
        started.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, so it stops taking connections and hands over what it spooled; kill after `timeout`."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the front did not stop within %gs: killed", timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)


def front_command(
    target: str, *, host: str, port: int, backend: str, link: str, spool: str, log_level: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "whatsagent.front",
        target,
        "--host",
        host,
        "--port",
        str(port),
        "--backend",
        backend,
        "--link",
        link,
        "--spool",
        spool,
        "--parent",
        str(os.getpid()),
        "--log-level",
        log_level,
    ]

"""The bot's process keeps its front running: started before the bot loads (both load in parallel),
started again if it dies, stopped (after it handed over what it spooled) when the bot stops."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from whatsagent.front.spool import spool_path

if TYPE_CHECKING:
    from whatsagent.channels.base import Channel

log = logging.getLogger(__name__)

QUICK_FAILURES = 3
"""A front that exits this many times in a row within `QUICK` seconds of starting (its port is taken, a
channel's settings do not load) stops the server: restarting it would not help."""
QUICK = 10.0
STOP_TIMEOUT = 20.0


class FrontProcess:
    """``python -m whatsagent.front``, kept running by a thread of the bot's process."""

    def __init__(self, command: list[str], *, env: dict[str, str] | None = None) -> None:
        self.command = command
        self.env = env
        self._settings: bytes | None = None
        """What each front reads on stdin before it serves (`configure`)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # a front is never spawned after `stop` looked for one to stop
        self._thread: threading.Thread | None = None

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
                proc = self._proc = subprocess.Popen(
                    self.command, env=self.env, stdin=subprocess.PIPE, start_new_session=True
                )
                settings = self._settings
            if settings is not None:
                _hand(proc, settings)
            started.set()
            code = proc.wait()
            if self._stopping.is_set():
                return
            quick = quick + 1 if time.monotonic() - began < QUICK else 0
            if quick >= QUICK_FAILURES:
                log.error("the front exited %d times in a row right after starting (code %s): stopping", quick, code)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            log.error("the front exited (code %s); starting it again (its spooled webhooks are kept)", code)
            if self._stopping.wait(min(5.0, 2.0**quick)):
                return
        started.set()

    def configure(self, settings: bytes) -> None:
        """Give the running front (and every one started after it) what it serves."""
        with self._lock:
            self._settings = settings
            proc = self._proc
        if proc is not None:
            _hand(proc, settings)

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


def _hand(proc: subprocess.Popen[bytes], settings: bytes) -> None:
    """Write `settings` to the front's stdin, once (a front that died meanwhile is started again)."""
    if proc.stdin is None or proc.stdin.closed:
        return
    try:
        proc.stdin.write(settings)
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass


class Front:
    """The front of one server: its private sockets (a directory of mode 0700) and its process.

    Started before the bot's process loads the app (``whatsagent serve --front``), so that both load at
    once; once the app is loaded, `configure` tells it the channels and the spool, and `AgentOS.serve`
    listens on `backend` and takes webhooks from `link`."""

    def __init__(self, *, host: str, port: int, log_level: str) -> None:
        self.sockets = tempfile.mkdtemp(prefix="whatsagent-")  # mode 0700: only this user reaches the sockets
        if len(self.sockets) > 90 and os.path.isdir("/tmp"):  # a socket's path holds at most 104-108 bytes
            os.rmdir(self.sockets)
            self.sockets = tempfile.mkdtemp(prefix="whatsagent-", dir="/tmp")
        self.backend = os.path.join(self.sockets, "http.sock")
        self.link = os.path.join(self.sockets, "link.sock")
        command = [
            sys.executable,
            "-m",
            "whatsagent.front",
            *("--host", host, "--port", str(port), "--backend", self.backend, "--link", self.link),
            *("--parent", str(os.getpid()), "--log-level", log_level),
        ]
        self.process = FrontProcess(command)

    def start(self) -> None:
        self.process.start()

    def configure(self, channels: Sequence[Channel], database_url: str) -> None:
        """The channels whose webhooks the front takes (the others' go to the bot's process), and the
        spool beside the bot's SQLite file."""
        fronted: list[Channel] = []
        for channel in channels:
            clone = channel.for_front()
            if clone is None:
                log.info("webhooks of channel %r go to the bot's process (the front cannot take them)", channel.name)
                continue
            try:
                pickle.dumps(clone)
            except Exception as exc:
                log.info(
                    "webhooks of channel %r go to the bot's process (its settings do not pickle: %s)", channel.name, exc
                )
                continue
            fronted.append(clone)
        self.process.configure(pickle.dumps({"channels": fronted, "spool": spool_path(database_url)}))

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.sockets, ignore_errors=True)

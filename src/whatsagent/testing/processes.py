"""Servers in their own processes, for tests that kill them, stop them or measure them: `ServerProcess`
runs ``whatsagent serve`` in a child process, `emulator_env` points it at an emulator, `free_port` finds
it a port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from whatsagent.testing.harness import VERIFY_TOKEN

if TYPE_CHECKING:
    from whatsagent.emulator import Emulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def emulator_env(emulator: Emulator) -> dict[str, str]:
    """The ``WHATSAPP_*`` settings that point a bot at `emulator`."""
    return {
        "WHATSAPP_ACCESS_TOKEN": emulator.access_token,
        "WHATSAPP_PHONE_NUMBER_ID": emulator.phone_number_id,
        "WHATSAPP_APP_SECRET": emulator.app_secret,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_API_BASE_URL": emulator.base_url,
    }


class ServerProcess:
    """``whatsagent serve TARGET`` in a child process, for tests that kill it, stop it or measure it.

    server = ServerProcess("myapp:os", env={**emulator_env(emu), "WHATSAGENT_DATABASE_URL": url})
    await server.start()            # returns once /ready answers 200
    emu.webhook_url = server.webhook_url
    server.kill9()                  # or: seconds = server.terminate()
    """

    def __init__(
        self,
        target: str,
        *,
        env: dict[str, str],
        role: str | None = None,
        cwd: str | Path | None = None,
        log: str | Path | None = None,
        prefix: str = "/whatsapp",
    ) -> None:
        self.target = target
        self.env = {**os.environ, **env}
        self.role = role
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.log = Path(log) if log is not None else None
        self.prefix = prefix
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.prefix}/webhook"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not started"
        return self.proc.pid

    def spawn(self) -> None:
        command = [sys.executable, "-m", "whatsagent.cli", "serve", self.target, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        if self.role is not None:
            command += ["--role", self.role]
        if self.log is not None:
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        else:
            self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env)

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and wait until it is ready; raise (with its log) if it exits first."""

        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        import aiohttp

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited during start-up (code {self.proc.returncode}){self.tail()}")
                try:
                    async with http.get(f"{self.url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"the server was not ready within {timeout:g}s{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        """Kill without warning (SIGKILL): nothing in the process gets to run."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM, as a deploy would; return the seconds the process took to exit."""
        assert self.proc is not None
        started = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return time.perf_counter() - started

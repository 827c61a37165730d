"""A whatsagent cluster on one machine: web and worker processes on PostgreSQL, behind a round-robin
load balancer, against the emulator (which plays WhatsApp in this process).

    async with Cluster(url, directory, webs=2, workers=3) as cluster:
        ana = cluster.emulator.user("15551234567")
        await ana.send_text("hi")            # Meta → load balancer → a web process → PostgreSQL
        await ana.wait_for_replies(1)        # a worker ran the turn and sent the answer
        cluster.kill(cluster.worker_processes[0])  # kill -9

Used by `test_scale_out.py` and `benchmarks/scale_out.py`; the bot is `scale_out_app.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from whatsagent.emulator import Emulator
from whatsagent.testing import ServerProcess, emulator_env, free_port

HERE = Path(__file__).parent
APP = "scale_out_app:agent_os"
PHONE_NUMBER_ID = "100200300"
ACCESS_TOKEN = "cluster-token"
APP_SECRET = "cluster-app-secret"


class LoadBalancer:
    """Spreads webhooks round-robin over the web processes, as the load balancer in front of them would."""

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = list(backends)
        self._next = itertools.cycle(range(len(self.backends)))
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
        )
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port, backlog=2048).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        backend = self.backends[next(self._next)]
        try:
            async with self._session.request(
                request.method, backend + request.path_qs, data=body, headers=headers
            ) as answer:
                return web.Response(status=answer.status, body=await answer.read())
        except (aiohttp.ClientError, TimeoutError):
            return web.Response(status=502, text="backend unavailable")


@dataclass
class Cluster:
    database_url: str
    directory: Path
    webs: int = 2
    workers: int = 3
    model_latency: tuple[float, float] = (0.0, 0.0)
    concurrency: int = 64
    turn_log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    emulator: Emulator = field(init=False)
    processes: list[ServerProcess] = field(default_factory=list, init=False)
    balancer: LoadBalancer = field(init=False)

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def web_processes(self) -> list[ServerProcess]:
        return [p for p in self.processes if p.role == "web"]

    @property
    def worker_processes(self) -> list[ServerProcess]:
        return [p for p in self.processes if p.role == "worker"]

    async def start(self) -> None:
        from whatsagent.store.migrations import upgrade

        self.directory.mkdir(parents=True, exist_ok=True)
        # Production order: migrate once, then start servers that do not migrate.
        await asyncio.to_thread(upgrade, self.database_url)
        self.emulator = Emulator(
            phone_number_id=PHONE_NUMBER_ID,
            access_token=ACCESS_TOKEN,
            app_secret=APP_SECRET,
            record_requests=False,
            page=False,
        )
        await self.emulator.start()
        for _ in range(self.webs):
            self.spawn("web")
        for _ in range(self.workers):
            self.spawn("worker")
        await self.wait_ready(self.processes)
        self.balancer = LoadBalancer([p.url for p in self.web_processes])
        await self.balancer.start()
        self.emulator.webhook_url = f"{self.balancer.url}/whatsapp/webhook"

    def spawn(self, role: str) -> ServerProcess:
        log = self.directory / f"{role}-{len(self.processes)}.log"
        env = {
            "WHATSAGENT_DATABASE_URL": self.database_url,
            "WHATSAGENT_AUTO_MIGRATE": "0",
            # 5 processes share PostgreSQL's 100 connections with the tests' own.
            "WHATSAGENT_DB_POOL_SIZE": "3",
            "WHATSAGENT_DB_MAX_OVERFLOW": "3",
            **emulator_env(self.emulator),
            "SCALE_MODEL_LATENCY": f"{self.model_latency[0]},{self.model_latency[1]}",
            "SCALE_CONCURRENCY": str(self.concurrency),
            **({"SCALE_TURN_LOG": str(self.turn_log)} if self.turn_log else {}),
            **self.env,
        }
        process = ServerProcess(APP, env=env, role=role, cwd=HERE, log=log)
        process.spawn()
        self.processes.append(process)
        return process

    async def wait_ready(self, processes: Sequence[ServerProcess], timeout: float = 300.0) -> None:
        await asyncio.gather(*(p.wait_ready(timeout) for p in processes))

    async def wait_idle(self, database_url: str, limit: float = 600.0) -> None:
        """Until no message waits, no turn is open, no outbound message waits to be sent and no wake-up
        job is left (finished jobs are deleted)."""
        from sqlalchemy import create_engine, text

        from whatsagent.store.migrations import sync_url

        engine = create_engine(sync_url(database_url))
        query = text(
            "SELECT (SELECT count(*) FROM inbox WHERE turn_id IS NULL AND triggers) "
            "+ (SELECT count(*) FROM turns WHERE status IN ('running', 'answered')) "
            "+ (SELECT count(*) FROM outbox WHERE status = 'pending')"
            # and no wake-up left: one retried after a failure finds nothing to do, but it still counts
            "+ (SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'conversation.wake' "
            "AND status IN ('todo', 'doing'))"
        )

        def busy() -> int:
            with engine.connect() as conn:
                return int(conn.execute(query).scalar() or 0)

        deadline = time.monotonic() + limit  # a guard against a hang, not a latency target
        try:
            calm = 0
            while calm < 2:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the cluster was still busy after {limit:g}s\n{self.logs()}")
                try:
                    calm = calm + 1 if await asyncio.to_thread(busy) == 0 else 0
                except Exception:  # PostgreSQL restarting
                    calm = 0
                await asyncio.sleep(0.1)
        finally:
            engine.dispose()

    def kill(self, process: ServerProcess) -> None:
        """kill -9: no shutdown, no cleanup, heartbeats just stop."""
        process.kill9()

    async def stop(self) -> None:
        with contextlib.suppress(AttributeError):
            await self.balancer.stop()
        for process in self.processes:
            if process.proc is not None and process.proc.poll() is None:
                process.proc.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.to_thread(process.terminate, 20)
            except subprocess.TimeoutExpired:
                assert process.proc is not None
                process.proc.kill()
                process.proc.wait(5)
        with contextlib.suppress(AttributeError):
            await self.emulator.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.role} {p.pid} ---\n{p.tail()}" for p in self.processes)


def turn_events(path: Path) -> list[tuple[int, str, int]]:
    """``(pid, start|end, turn id)`` lines the model wrote, in order."""
    events: list[tuple[int, str, int]] = []
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("start", "end"):
                events.append((int(parts[0]), parts[1], int(parts[2])))
    return events


def sends_in_flight(path: Path) -> dict[int, set[str]]:
    """Sends each process started (``send <key>``) and has not seen accepted (``sent <key>``)."""
    flying: dict[int, set[str]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("send", "sent"):
                keys = flying.setdefault(int(parts[0]), set())
                (keys.add if parts[1] == "send" else keys.discard)(parts[2])
    return flying


def in_flight(events: Sequence[tuple[int, str, int]]) -> dict[int, set[int]]:
    """Turns each process started and has not finished."""
    running: dict[int, set[int]] = {}
    for pid, event, turn in events:
        turns = running.setdefault(pid, set())
        if event == "start":
            turns.add(turn)
        else:
            turns.discard(turn)
    return running


__all__ = ["Cluster", "LoadBalancer", "in_flight", "sends_in_flight", "turn_events"]

"""Side by side with agno's WhatsApp interface: the same load, the same fakes, one run, printed as ratios.

agno is installed from PyPI into its own venv (``$BENCH_AGNO_VENV``, default
``~/.cache/whatsagent-bench/agno-venv``) the first time; its app is `benchmarks/agno_app.py`.

    python -m benchmarks agno [--scenario fast|slow|startup|all]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks import provider
from whatsagent.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["agno", "fastapi", "uvicorn", "openai", "python-multipart", "sqlalchemy"]


def agno_python() -> Path:
    venv = Path(os.environ.get("BENCH_AGNO_VENV") or Path.home() / ".cache" / "whatsagent-bench" / "agno-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing agno into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return python


class AgnoServer:
    """agno's AgentOS with its WhatsApp interface, in its own process (the same interface as ServerProcess)."""

    def __init__(self, fakes: provider.Fakes, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "WHATSAPP_ACCESS_TOKEN": provider.ACCESS_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": provider.PHONE_NUMBER_ID,
            "WHATSAPP_APP_SECRET": provider.APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": "bench",
            "BENCH_GRAPH_URL": fakes.url,
            "BENCH_OPENAI_URL": f"{fakes.url}/v1",
        }
        self.env.pop("PYTHONPATH", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 120) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(agno_python()), str(ROOT / "benchmarks" / "agno_app.py"), str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"agno exited during start-up: {self.log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{self.url}/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError("agno was not ready in time")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def load(kind: str, workdir: Path, *, model_delay: float, per_user: int, connections: int) -> dict[str, float]:
    if kind != "agno":
        return await provider.run_load(
            kind,
            workdir,
            model_delay=model_delay,
            users=200,
            per_user=per_user,
            connections=connections,
            merge_window=0.3,
        )
    fakes = provider.Fakes(model_delay)
    server = AgnoServer(fakes, workdir / f"agno-{model_delay}.log")
    try:
        await server.start()
        url = f"{server.url}/whatsapp/webhook"
        await provider.drive(url, fakes, [f"1666{i:07d}" for i in range(50)], 1, 16, tag="warm", timeout=120)
        cpu0 = provider.cpu_seconds(server.pid)
        figures = await provider.drive(
            url, fakes, [f"1555{i:07d}" for i in range(200)], per_user, connections, tag="run"
        )
        figures["bot_cpu_ms_per_msg"] = (provider.cpu_seconds(server.pid) - cpu0) * 1000 / figures["messages"]
        figures["peak_rss_mb"] = provider.peak_rss_mb(server.pid)
        return figures
    finally:
        server.terminate()
        fakes.close()


async def startup(kind: str, workdir: Path, runs: int = 3) -> float:
    if kind != "agno":
        return (await provider.startup(kind, workdir, runs))["startup_median_s"]
    fakes = provider.Fakes(0)
    try:
        times = []
        for i in range(runs):
            server = AgnoServer(fakes, workdir / f"agno-start-{i}.log")
            started = time.monotonic()
            await server.start()
            times.append(time.monotonic() - started)
            server.terminate()
        return statistics.median(times)
    finally:
        fakes.close()


def ratios(name: str, ours: dict[str, float], theirs: dict[str, float]) -> None:
    provider.show(name, {"whatsagent": ours, "agno": theirs}, None)
    print(
        "  whatsagent / agno: "
        + ", ".join(
            f"{key} x{ours[key] / theirs[key]:.2f}"
            for key in ("answered_msgs_per_s", "bot_cpu_ms_per_msg", "ack_p99_ms", "reply_p50_ms", "peak_rss_mb")
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["fast", "slow", "startup", "all"], default="all")
    args = parser.parse_args()
    agno_python()
    with tempfile.TemporaryDirectory(prefix="whatsagent-bench-") as tmp:
        workdir = Path(tmp)
        if args.scenario in ("startup", "all"):
            ours, theirs = asyncio.run(startup("openai", workdir)), asyncio.run(startup("agno", workdir))
            print(
                f"\nstart-up to ready (median of 3, load average {os.getloadavg()[0]:.2f}): whatsagent "
                f"{ours:.2f} s, agno {theirs:.2f} s, whatsagent / agno x{ours / theirs:.2f}"
            )
        if args.scenario in ("fast", "all"):
            figures = {
                k: asyncio.run(load(k, workdir, model_delay=0, per_user=10, connections=32)) for k in ("openai", "agno")
            }
            ratios(
                "zero-latency model: 2,000 messages, 200 users on 32 connections", figures["openai"], figures["agno"]
            )
        if args.scenario in ("slow", "all"):
            figures = {
                k: asyncio.run(load(k, workdir, model_delay=2.0, per_user=5, connections=200))
                for k in ("openai", "agno")
            }
            ratios("2 s model: 1,000 messages, 200 users on 200 connections", figures["openai"], figures["agno"])


if __name__ == "__main__":
    main()

"""Start-up: seconds from spawning the server to its first 200 on ``/health`` and on ``/ready``.

Apps (each in a fresh process, SQLite in a fresh directory):
- ``openai``: ``whatsagent serve benchmarks.app:os`` with ``Agent(model="gpt-4o-mini", base_url=...)``;
- ``offline``: ``whatsagent serve examples.basic:agent_os`` with no model key (the offline model);
- ``demo``: ``whatsagent demo`` (the bot and the emulator in one process), to the bot's ``/health``.

``--baseline DIR`` also runs another checkout's ``src`` (say, ``git worktree add /tmp/base HEAD~3``),
alternating with this one run by run, so both see the same machine load; the table gives their ratio.

    python -m benchmarks startup [--apps openai,offline,demo] [--runs 5] [--baseline /tmp/base]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.webhooks import peak_rss_mb
from whatsagent.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
CHANNEL_ENV = {
    "WHATSAPP_ACCESS_TOKEN": "bench-token",
    "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
    "WHATSAPP_APP_SECRET": "bench-secret",
    "WHATSAPP_VERIFY_TOKEN": "bench",
    "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9",  # nothing is sent: no message arrives
}
MODEL_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY")


def command(app: str, port: int) -> tuple[list[str], dict[str, str]]:
    serve = [sys.executable, "-m", "whatsagent.cli", "serve", "--port", str(port), "--log-level", "warning"]
    if app == "openai":
        env = {**CHANNEL_ENV, "BENCH_AGENT": "openai", "BENCH_OPENAI_URL": "http://127.0.0.1:9/v1"}
        return [*serve, "benchmarks.app:os"], env
    if app == "offline":
        return [*serve, "examples.basic:agent_os"], dict(CHANNEL_ENV)
    if app == "demo":
        return [sys.executable, "-m", "whatsagent.cli", "demo", "--port", str(port)], {}
    raise SystemExit(f"unknown app {app!r}: openai, offline or demo")


async def first_200(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], deadline: float) -> float:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited during start-up (code {proc.returncode})")
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return time.monotonic()
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{url} did not answer 200 in time")


async def start_once(app: str, src: Path, workdir: Path) -> dict[str, float]:
    port = free_port()
    argv, extra = command(app, port)
    db = workdir / f"{app}-{port}.db"
    env = {k: v for k, v in os.environ.items() if k not in MODEL_KEYS and not k.startswith("WHATSAGENT_")}
    env.update(extra)
    env["WHATSAGENT_DATABASE_URL"] = f"sqlite:///{db}"
    env["WHATSAGENT_MEDIA_DIR"] = str(workdir / "media")
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    if app == "demo":
        argv += ["--database", f"sqlite:///{db}"]
    log = open(workdir / f"{app}-{port}.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = started + 120
            health = await first_200(http, f"http://127.0.0.1:{port}/health", proc, deadline)
            ready = health if app == "demo" else await first_200(http, f"http://127.0.0.1:{port}/ready", proc, deadline)
        rss = peak_rss_mb(proc.pid)
        return {"health_s": health - started, "ready_s": ready - started, "rss_at_ready_mb": rss}
    except (RuntimeError, TimeoutError) as exc:
        log.flush()
        raise RuntimeError(f"{exc}\n{(workdir / log.name).read_text(errors='replace')[-2000:]}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "ready_min_s": min(r["ready_s"] for r in runs),
        "ready_median_s": statistics.median(r["ready_s"] for r in runs),
        "health_median_s": statistics.median(r["health_s"] for r in runs),
        "rss_at_ready_mb": statistics.median(r["rss_at_ready_mb"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", default="openai,offline,demo")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout: its src/ is run alternately with this one")
    args = parser.parse_args()
    trees = {"this": ROOT / "src"}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve() / "src", **trees}
    load = os.getloadavg()[0]
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="whatsagent-startup-") as tmp:
        for app in args.apps.split(","):
            results[app] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, src in trees.items():
                    results[app][name].append(asyncio.run(start_once(app, src, Path(tmp))))
    print(f"\nstart-up, spawn to first 200  (load average {load:.2f} → {os.getloadavg()[0]:.2f}, {args.runs} runs)")
    for app, by_tree in results.items():
        figures = {name: summary(runs) for name, runs in by_tree.items()}
        for name, f in figures.items():
            print(f"  {app:>8} {name:>8}: " + ", ".join(f"{k} {v:.2f}" for k, v in f.items()))
        if "baseline" in figures:
            base, this = figures["baseline"], figures["this"]
            print(
                f"  {app:>8} this/baseline: ready median x{this['ready_median_s'] / base['ready_median_s']:.2f}, "
                f"min x{this['ready_min_s'] / base['ready_min_s']:.2f}, "
                f"RSS x{this['rss_at_ready_mb'] / base['rss_at_ready_mb']:.2f}"
            )


if __name__ == "__main__":
    main()

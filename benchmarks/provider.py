"""The configuration users run: ``Agent(model="gpt-4o-mini", base_url=...)`` against a fake OpenAI server.

The bot (`whatsagent serve benchmarks.app:os`) runs in its own process, so its CPU and memory are
measured alone. A second process serves a fake Graph API and a fake OpenAI ``/v1/chat/completions`` on
loopback (answering at once, or after ``--model-delay`` seconds); this process posts signed webhooks. The
fakes also answer Gemini's ``/v1beta/models/{model}:generateContent`` and Anthropic's ``/v1/messages``.

Every reply is ``ok <the last message the model saw>``, so the fake Graph API knows which messages each
reply answers: a message's reply latency is from the start of its webhook post to the arrival of the
first reply that covers it (a merged turn answers several messages at once).

Scenarios (each prints answered msgs/s, bot CPU ms per message, ack p50/p99, reply latency p50/p99,
peak RSS, and for comparison the same load on other agents, in the same run):
- ``fast``: 2,000 messages from 200 users on 32 connections, a model answering at once;
- ``slow``: 1,000 messages from 200 users on 200 connections (5 each), a model taking 2 s;
- ``startup``: seconds from spawning ``whatsagent serve`` to ``/ready`` answering 200.

    python -m benchmarks provider [--scenario fast|slow|startup|all] [--agents openai,openai-unshared,pydantic]
    python -m benchmarks provider --baseline /tmp/base --agents openai+base,openai   # another checkout vs this

An agent name may end in ``+admitN`` (``openai+admit20``): the same bot admitting new turns only while the
event loop lags less than N ms (`AgentOS(admission_lag=...)`); and in ``+nodetails``: without turn details
(`AgentOS(turn_details=False)`, no OpenTelemetry spans recorded per turn); ``+front``: ``serve --front``,
webhooks acknowledged by a process of their own (CPU and RSS are the two processes' sums,
``web_cpu_ms_per_msg`` the front's share); ``+pg``: on PostgreSQL (a fresh
database on ``WHATSAGENT_BENCH_POSTGRES_URL``); ``+split``: on PostgreSQL as two processes on this machine,
``--role web`` (acknowledging webhooks) and ``--role worker`` (turns and sends); ``+thread``: turns on an
event loop of their own in a second thread (`AgentOS(turn_thread=True)`), ``+oneloop``: everything on the
server's one event loop (`turn_thread=False`); ``+switchN``: CPython's switch interval at N µs
(`sys.setswitchinterval`, 5,000 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import re
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from benchmarks import loadgen
from benchmarks.webhooks import cpu_seconds, peak_rss_mb, signed_text, with_children
from whatsagent.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
ACCESS_TOKEN = "bench-token"
APP_SECRET = "bench-secret"
PHONE_NUMBER_ID = "100000000000001"


# --- the fakes (their own process) ------------------------------------------------------------------


def _completion(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
        }
    ).encode()


def _gemini_content(text: str) -> bytes:
    """A minimal Gemini ``generateContent`` answer."""
    return json.dumps(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 3, "totalTokenCount": 23},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "bench",
        }
    ).encode()


def _anthropic_message(text: str) -> bytes:
    """A minimal Anthropic Messages API answer."""
    return json.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 3},
        }
    ).encode()


def _anthropic_events(text: str) -> bytes:
    """The same answer as a Messages API stream (pydantic-ai streams a request whose ``max_tokens`` is left
    to the model's maximum, as the SDK requires)."""
    events = [
        {
            "type": "message_start",
            "message": {**json.loads(_anthropic_message("")), "content": [], "stop_reason": None},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _last_line(messages: list[dict[str, Any]]) -> str:
    """The latest message the turn's prompt holds: the highest ``m<k>`` in it. (Not its last line: two
    messages of one user posted at once, on two connections, may be stored in either order.)"""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            seen = [int(k) for k in re.findall(r"^m(\d+)$", str(content), re.MULTILINE)]
            return f"m{max(seen)}" if seen else str(content).rsplit("\n", 1)[-1]
    return ""


async def _serve_fakes(model_delay: float, conn: Any) -> None:
    replies: list[tuple[str, str, float]] = []
    counter = iter(range(10**9))
    calls: dict[str, Any] = {"chat": 0, "at": []}  # model requests: how many, when each arrived

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        calls["chat"] += 1
        calls["at"].append(time.monotonic())
        if model_delay:
            await asyncio.sleep(model_delay)
        return web.Response(body=_completion("ok " + _last_line(body["messages"])), content_type="application/json")

    async def gemini(request: web.Request) -> web.Response:
        body = await request.json()
        calls["chat"] += 1
        calls["at"].append(time.monotonic())
        if model_delay:
            await asyncio.sleep(model_delay)
        contents = [{"role": c.get("role"), "content": c.get("parts", [])} for c in body.get("contents", [])]
        return web.Response(body=_gemini_content("ok " + _last_line(contents)), content_type="application/json")

    async def anthropic(request: web.Request) -> web.Response:
        body = await request.json()
        calls["chat"] += 1
        calls["at"].append(time.monotonic())
        if model_delay:
            await asyncio.sleep(model_delay)
        text = "ok " + _last_line(body["messages"])
        if body.get("stream"):
            return web.Response(body=_anthropic_events(text), content_type="text/event-stream")
        return web.Response(body=_anthropic_message(text), content_type="application/json")

    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("type") == "text":
            replies.append((body["to"], body["text"]["body"], time.monotonic()))
        if "status" in body:
            return web.json_response({"success": True})
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                "messages": [{"id": f"wamid.OUT{next(counter)}"}],
            }
        )

    async def collected(request: web.Request) -> web.Response:
        return web.json_response(replies)

    async def model_calls(request: web.Request) -> web.Response:
        return web.json_response(calls)

    async def reset(request: web.Request) -> web.Response:
        replies.clear()
        calls["chat"] = 0
        calls["at"].clear()
        return web.json_response({})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1beta/models/{model}:generateContent", gemini)  # Google Gemini
    app.router.add_post("/v1/messages", anthropic)  # Anthropic
    app.router.add_post("/{version}/{pnid}/messages", messages)
    app.router.add_get("/bench/replies", collected)
    app.router.add_get("/bench/model_calls", model_calls)
    app.router.add_post("/bench/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    conn.send(port)
    await asyncio.Event().wait()


def _fakes_main(model_delay: float, conn: Any) -> None:
    asyncio.run(_serve_fakes(model_delay, conn))


class Fakes:
    """The fake Graph API and fake OpenAI (Gemini and Anthropic too), in a child process (its CPU is not the
    bot's nor the driver's)."""

    def __init__(self, model_delay: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_fakes_main, args=(model_delay, child), daemon=True)
        self.proc.start()
        self.port = parent.recv()
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


# --- the driver --------------------------------------------------------------------------------------


def bot(
    fakes: Fakes,
    db: Path,
    agent: str,
    merge_window: float,
    extra: dict[str, str] | None = None,
    role: str | None = None,
) -> ServerProcess:
    """`agent` is a BENCH_AGENT, optionally with ``+admitN``: admission of turns at N ms of loop lag."""
    agent, *options = agent.split("+")
    extra = dict(extra or {})
    for option in options:
        if option.startswith("admit"):
            extra["BENCH_ADMISSION_LAG"] = str(int(option.removeprefix("admit")) / 1000)
        elif option == "nodetails":
            extra["BENCH_TURN_DETAILS"] = "0"
        elif option.startswith("switch"):
            extra["BENCH_SWITCH_INTERVAL"] = str(int(option.removeprefix("switch")) / 1e6)
        elif option in ("thread", "oneloop"):
            extra["WHATSAGENT_TURN_THREAD"] = "1" if option == "thread" else "0"
        elif option in ("merge", "interrupt", "queue"):
            extra["BENCH_ON_NEW_MESSAGE"] = option  # TurnPolicy(on_new_message=...)
        elif option.startswith("gc"):  # +gcoff: Python's collector as it is; +gc20000_50_100: those thresholds
            extra["WHATSAGENT_GC_THRESHOLDS"] = option.removeprefix("gc").replace("_", ",")
        elif option == "base":  # whatsagent from the --baseline checkout (its src/), the benchmark from this one
            if not os.environ.get("BENCH_BASELINE"):
                raise SystemExit("+base needs --baseline DIR (another checkout: git worktree add /tmp/base HEAD~5)")
            extra["PYTHONPATH"] = os.pathsep.join([os.path.join(os.environ["BENCH_BASELINE"], "src"), str(ROOT)])
        elif option == "front":
            extra["WHATSAGENT_FRONT"] = "1"  # webhooks acknowledged by a process of their own
        elif option in ("pg", "split"):
            pass  # the database and the processes: see run_load
        else:
            raise SystemExit(
                f"unknown agent option +{option}: +admitN, +nodetails, +thread, +oneloop, +merge, +interrupt, "
                "+queue, +front, +pg or +split"
            )
    env = {
        "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "bench",
        "WHATSAPP_API_BASE_URL": fakes.url,
        "WHATSAGENT_DATABASE_URL": f"sqlite:///{db}",
        "WHATSAGENT_MEDIA_DIR": str(db.parent / "media"),
        "BENCH_MERGE_WINDOW": str(merge_window),
        "BENCH_AGENT": agent,
        "BENCH_OPENAI_URL": f"{fakes.url}/v1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        **extra,
    }
    log = db.with_suffix(f".{role}.log" if role else ".log")
    return ServerProcess("benchmarks.app:os", env=env, cwd=ROOT, log=log, role=role)


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


async def drive(
    url: str,
    fakes: Fakes,
    users: list[str],
    per_user: int,
    connections: int,
    *,
    tag: str,
    timeout: float = 300,
) -> dict[str, float]:
    """Post `per_user` messages from each user (user-interleaved) on `connections` connections in a closed
    loop; wait until every message is answered. Return the figures (CPU is measured by the caller)."""
    # Every webhook is signed and framed before the clock starts (`loadgen`: the driver, not the server,
    # would otherwise be what the acknowledgements measure).
    requests = []
    for k in range(per_user):
        for user in users:
            raw = signed_text(APP_SECRET, PHONE_NUMBER_ID, user, f"wamid.{tag}.{user}.{k}", f"m{k}")
            sig = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
            requests.append(loadgen.post(url, raw, {"X-Hub-Signature-256": sig}, (user, k)))
    posted: dict[tuple[str, int], float] = {}
    acks: list[float] = []
    timeline: list[tuple[float, float]] = []

    def answered_webhook(request: loadgen.Request, status: int, sent_at: float, latency: float) -> None:
        if status != 200:
            raise RuntimeError(f"webhook answered {status}")
        posted[request.key] = sent_at  # type: ignore[index]
        acks.append(latency)
        timeline.append((sent_at, latency))

    target = urlsplit(url)
    async with aiohttp.ClientSession() as http:
        await http.post(f"{fakes.url}/bench/reset")
        started = time.monotonic()
        await loadgen.closed_loop(
            target.hostname or "127.0.0.1", target.port or 80, requests, connections, answered_webhook
        )
        acked = time.monotonic() - started
        if os.environ.get("BENCH_ACK_TIMELINE") and tag == "run":  # seconds since the start, ack seconds
            with open(os.environ["BENCH_ACK_TIMELINE"], "a") as out:
                out.writelines(f"{t - started:.4f} {latency:.4f}\n" for t, latency in timeline)
        answered: dict[tuple[str, int], float] = {}
        deadline = time.monotonic() + timeout
        replies: list[list[Any]] = []
        while time.monotonic() < deadline:
            async with http.get(f"{fakes.url}/bench/replies") as r:
                replies = await r.json()
            covered: dict[str, int] = defaultdict(lambda: -1)
            count: dict[str, int] = defaultdict(int)
            for to, text, _at in replies:
                count[to] += 1
                if text.startswith("ok m"):
                    covered[to] = max(covered[to], int(text[4:]))
            # Done when every message is covered, or (a bot answering errors) each had a reply of its own.
            if all(covered[u] >= per_user - 1 or count[u] >= per_user for u in users):
                break
            await asyncio.sleep(0.2)
        else:
            missing = [u for u in users if covered[u] < per_user - 1]
            odd = [r for r in replies if not r[1].startswith("ok m")][:3]
            raise TimeoutError(f"not every message was answered: none for {missing[:5]}; other replies: {odd}")
        # The first reply covering each message: replies arrive in order per user.
        for to, text, at in sorted(replies, key=lambda r: r[2]):
            if not text.startswith("ok m"):
                continue
            for k in range(int(text[4:]) + 1):
                answered.setdefault((to, k), at)
        reply_latency = [answered[key] - posted[key] for key in posted if key in answered]
        finished = max(r[2] for r in replies) - started
        n = len(posted)
        async with http.get(f"{fakes.url}/bench/model_calls") as r:
            calls = await r.json()
        model_calls = calls["chat"]
        # Where a reply's time goes: when the model's requests reached the fake, and when the replies
        # reached the Graph API, in seconds from the first webhook (p50 of each).
        model_at = sorted(at - started for at in calls["at"])
        reply_at = sorted(r[2] - started for r in replies)
        return {
            "messages": n,
            "turns": len(replies),
            "model_calls": model_calls,
            "error_replies": sum(1 for r in replies if not r[1].startswith("ok m")),
            "answered_msgs_per_s": n / finished,
            "acks_per_s": n / acked,
            "ack_p50_ms": pct(acks, 50),
            "ack_p99_ms": pct(acks, 99),
            "reply_p50_ms": pct(reply_latency, 50),
            "reply_p99_ms": pct(reply_latency, 99),
            "acked_all_s": acked,
            "model_request_first_s": model_at[0] if model_at else float("nan"),
            "model_request_p50_s": statistics.median(model_at) if model_at else float("nan"),
            "model_request_last_s": model_at[-1] if model_at else float("nan"),
            "reply_sent_p50_s": statistics.median(reply_at) if reply_at else float("nan"),
        }


async def run_load(
    agent: str,
    workdir: Path,
    *,
    model_delay: float,
    users: int,
    per_user: int,
    connections: int,
    merge_window: float,
    extra: dict[str, str] | None = None,
) -> dict[str, float]:
    fakes = Fakes(model_delay)
    options = set(agent.split("+")[1:])
    plain = "+".join(o for o in agent.split("+") if o not in ("pg", "split"))
    database = None
    if options & {"pg", "split"}:
        # PostgreSQL (procrastinate's queue); with +split, a web and a worker process on this machine.
        from benchmarks.scale_out import DEFAULT_URL, _fresh_database

        name = f"whatsagent_provider_{os.getpid()}_{abs(hash(agent)) % 10**6}"
        server_url = os.environ.get("WHATSAGENT_BENCH_POSTGRES_URL", DEFAULT_URL)
        database = (server_url, name)
        extra = {**(extra or {}), "WHATSAGENT_DATABASE_URL": _fresh_database(server_url, name)}
    db = workdir / f"{agent}-{model_delay}.db"
    if "split" in options:
        servers = [bot(fakes, db, plain, merge_window, extra, role=r) for r in ("worker", "web")]
    else:
        servers = [bot(fakes, db, plain, merge_window, extra)]
    try:
        for server in servers:  # the worker first: it migrates the database
            await server.start()
        url = f"{servers[-1].url}/whatsapp/webhook"
        # Warm-up: the agent, the connection pools and the database, off the clock.
        await drive(url, fakes, [f"1666{i:07d}" for i in range(50)], 1, 16, tag="warm", timeout=30)
        # The processes measured: each server and its children (a front is one).
        pids = [pid for s in servers for pid in with_children(s.pid)]
        web_pids = pids[1:] if len(pids) > 1 else []  # +split: the web server; +front: the front
        cpu0 = sum(cpu_seconds(p) for p in pids)
        web_cpu0 = sum(cpu_seconds(p) for p in web_pids)
        figures = await drive(url, fakes, [f"1555{i:07d}" for i in range(users)], per_user, connections, tag="run")
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        figures["bot_cpu_ms_per_msg"] = cpu * 1000 / figures["messages"]
        # How many turns the messages made depends on how closely each user's messages arrived (they merge):
        # CPU per turn compares the cost of the work itself across runs that merged differently.
        figures["bot_cpu_ms_per_turn"] = cpu * 1000 / max(1, figures["turns"])
        if web_pids:
            figures["web_cpu_ms_per_msg"] = (
                (sum(cpu_seconds(p) for p in web_pids) - web_cpu0) * 1000 / figures["messages"]
            )
        figures["peak_rss_mb"] = sum(peak_rss_mb(p) for p in pids)
        return figures
    except TimeoutError:
        for server in servers:
            print(f"--- the end of {server.log}:{server.tail(60)}")
        raise
    finally:
        for server in servers:
            server.terminate()
        fakes.close()
        if database is not None:
            from benchmarks.scale_out import _drop_database

            _drop_database(*database)


async def startup(agent: str, workdir: Path, runs: int = 3) -> dict[str, float]:
    fakes = Fakes(0)
    try:
        times = []
        for i in range(runs):
            server = bot(fakes, workdir / f"start-{agent}-{i}.db", agent, 0.3)
            started = time.monotonic()
            await server.start()
            times.append(time.monotonic() - started)
            rss = sum(peak_rss_mb(p) for p in with_children(server.pid))
            server.terminate()
        return {"startup_min_s": min(times), "startup_median_s": statistics.median(times), "idle_rss_mb": rss}
    finally:
        fakes.close()


def show(title: str, results: dict[str, dict[str, float]], baseline: str | None) -> None:
    print(f"\n{title}  (load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)")
    names = list(results)
    keys = list(next(iter(results.values())))
    print(f"  {'':>22}" + "".join(f"{n:>18}" for n in names))
    for key in keys:
        print(f"  {key:>22}" + "".join(f"{results[n].get(key, float('nan')):>18,.2f}" for n in names))
    if baseline in results and len(names) > 1:
        base = results[baseline]
        for name in names:
            if name == baseline:
                continue
            r = results[name]
            print(
                f"  {name} / {baseline}: msgs/s x{r['answered_msgs_per_s'] / base['answered_msgs_per_s']:.2f}, "
                f"CPU/msg x{r['bot_cpu_ms_per_msg'] / base['bot_cpu_ms_per_msg']:.2f}, "
                f"CPU/turn x{r['bot_cpu_ms_per_turn'] / base['bot_cpu_ms_per_turn']:.2f}, "
                f"ack p99 x{r['ack_p99_ms'] / base['ack_p99_ms']:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["fast", "slow", "startup", "all"], default="all")
    parser.add_argument("--agents", default="openai,openai-unshared,pydantic", help="comma-separated BENCH_AGENTs")
    parser.add_argument("--messages", type=int, default=2000, help="messages in the fast scenario")
    parser.add_argument("--merge-window", type=float, default=0.3, help="AgentOS merge_window (default: 0.3)")
    parser.add_argument("--profile", type=Path, help="cProfile the bot's event-loop thread into this file")
    parser.add_argument("--baseline", type=Path, help="another checkout, run by agents with +base (e.g. openai+base)")
    args = parser.parse_args()
    if args.baseline is not None:
        os.environ["BENCH_BASELINE"] = str(args.baseline.resolve())
    extra = {"BENCH_PROFILE": str(args.profile.resolve())} if args.profile else None
    agents = [a for a in args.agents.split(",") if a]
    with tempfile.TemporaryDirectory(prefix="whatsagent-bench-") as tmp:
        workdir = Path(tmp)
        if args.scenario in ("startup", "all"):
            show_start = {a: asyncio.run(startup(a, workdir)) for a in agents}
            print(f"\nstart-up to /ready  (load average {os.getloadavg()[0]:.2f})")
            for name, f in show_start.items():
                print(f"  {name:>18}: " + ", ".join(f"{k} {v:.2f}" for k, v in f.items()))
        if args.scenario in ("fast", "all"):
            results = {
                a: asyncio.run(
                    run_load(
                        a,
                        workdir,
                        model_delay=0,
                        users=200,
                        per_user=args.messages // 200,
                        connections=32,
                        merge_window=args.merge_window,
                        extra=extra,
                    )
                )
                for a in agents
            }
            show("zero-latency model: 200 users on 32 connections", results, agents[0] if len(agents) > 1 else None)
        if args.scenario in ("slow", "all"):
            results = {
                a: asyncio.run(
                    run_load(
                        a,
                        workdir,
                        model_delay=2.0,
                        users=200,
                        per_user=5,
                        connections=200,
                        merge_window=args.merge_window,
                        extra=extra,
                    )
                )
                for a in agents
            }
            show("2 s model: 200 users on 200 connections, 5 messages each", results, None)


if __name__ == "__main__":
    main()

"""`whatsagent serve --front`: webhooks acknowledged by a process of their own, handed to the bot's
process in order, never lost and never answered twice, whichever process dies when."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import httpx
import pytest
from tests.test_resilience import answered_inputs, assert_left_idle, wait_until

from whatsagent.channels import CloudAPI
from whatsagent.channels.cloudapi.parse import parse_webhook
from whatsagent.emulator import Emulator
from whatsagent.errors import StoreUnavailable
from whatsagent.front import wire
from whatsagent.front.link import Courier, Ingest
from whatsagent.front.spool import Spool
from whatsagent.messages import ChannelNotice, ProviderError, Text, User
from whatsagent.testing import ServerProcess, emulator_env

ROOT = Path(__file__).resolve().parent.parent
RECORDED = [
    payload
    for folder in ("pywa", "cloudapi")
    for path in sorted((ROOT / "tests" / "data" / folder).glob("*.json"))
    for payload in (lambda data: data.values() if "entry" not in data else [data])(json.loads(path.read_text()))
]


def test_every_recorded_webhook_crosses_the_spool_unchanged() -> None:
    crossed = 0
    for payload in RECORDED:
        events = parse_webhook(payload, channel="wa")
        assert wire.load_events(wire.dump_events(events)) == events
        crossed += len(events)
    notice = ChannelNotice(channel="wa", account="1", errors=(ProviderError(code=131056, title="pair rate limit"),))
    assert wire.load_events(wire.dump_events([notice])) == [notice]
    assert crossed > 60


def text(i: int, user: str = "15550001111") -> Text:
    return Text(channel="wa", account="1", id=f"wamid.{i}", user=User(wa_id=user), body=f"m{i}")


async def test_spooled_webhooks_reach_the_store_in_order_through_store_failures_and_a_broken_link(tmp_path) -> None:
    stored: list[str] = []
    failures = {"left": 2}
    accepted = asyncio.Event()

    async def accept(events) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreUnavailable("disk full")
        stored.extend(e.id for e in events)
        if len(set(stored)) == 30:
            accepted.set()

    link = str(tmp_path / "link.sock")
    ingest = Ingest(link, accept)
    spool = Spool(str(tmp_path / "spool"))
    courier = Courier(link, spool, await spool.open())
    running = asyncio.create_task(courier.run())
    try:
        for i in range(10):  # spooled while the bot's process is not listening yet
            courier.add(await spool.add(wire.dump_events([text(i)])))
        await ingest.start()
        for i in range(10, 20):
            courier.add(await spool.add(wire.dump_events([text(i)])))
        await wait_until(lambda: len(stored) >= 20, 30, "the first twenty were stored")
        await ingest.stop()  # the bot's process goes away and comes back
        for i in range(20, 30):
            courier.add(await spool.add(wire.dump_events([text(i)])))
        ingest = Ingest(link, accept)
        await ingest.start()
        await asyncio.wait_for(accepted.wait(), 30)
        assert await courier.drain(30)
    finally:
        running.cancel()
        await ingest.stop()
    # Order kept; a webhook sent again after the break is the inbox's to dedupe (it may arrive twice).
    first_seen = list(dict.fromkeys(stored))
    assert first_seen == [f"wamid.{i}" for i in range(30)]
    await spool.close()
    again = Spool(str(tmp_path / "spool"))
    assert await again.open() == []  # everything confirmed was forgotten
    await again.close()


async def test_a_webhook_that_cannot_be_stored_is_dropped_with_an_error_and_the_rest_are_stored(
    tmp_path, caplog
) -> None:
    stored: list[str] = []

    async def accept(events) -> None:
        if any(e.id == "wamid.1" for e in events):
            raise RuntimeError("a bug in storing this one")
        stored.extend(e.id for e in events)

    link = str(tmp_path / "link.sock")
    ingest = Ingest(link, accept)
    await ingest.start()
    spool = Spool(str(tmp_path / "spool"))
    courier = Courier(link, spool, await spool.open())
    running = asyncio.create_task(courier.run())
    try:
        courier.add(await spool.add(wire.dump_events([text(0)])))
        courier.add(await spool.add(b'[["message", {"kind": "no such kind"}]]'))  # does not even load
        courier.add(await spool.add(wire.dump_events([text(1)])))
        courier.add(await spool.add(wire.dump_events([text(2)])))
        assert await courier.drain(30)
    finally:
        running.cancel()
        await ingest.stop()
        await spool.close()
    assert stored == ["wamid.0", "wamid.2"]
    assert "webhook 2 from the front cannot be stored" in caplog.text
    assert "webhook 3 from the front cannot be stored" in caplog.text


async def test_what_the_bot_never_confirmed_is_in_the_spool_at_the_next_start(tmp_path) -> None:
    spool = Spool(str(tmp_path / "spool"))
    courier = Courier(str(tmp_path / "nobody.sock"), spool, await spool.open())
    for i in range(3):
        courier.add(await spool.add(wire.dump_events([text(i)])))
    await spool.close()  # the front dies here: nothing was confirmed

    again = Spool(str(tmp_path / "spool"))
    left = await again.open()
    assert [e.id for _, _, blob in left for e in wire.load_events(blob)] == ["wamid.0", "wamid.1", "wamid.2"]
    await again.close()


async def test_webhooks_spooled_at_once_keep_their_order_and_survive_a_restart(tmp_path) -> None:
    spool = Spool(str(tmp_path / "spool"))
    assert await spool.open() == []
    spooled = await asyncio.gather(*(spool.add(wire.dump_events([text(i)])) for i in range(300)))
    ids = [spool_id for spool_id, _, _ in spooled]
    assert ids == sorted(ids) and len(set(ids)) == 300  # in the order they came, each its own id
    await spool.forget(ids[:100])
    await spool.close()
    again = Spool(str(tmp_path / "spool"))
    left = await again.open()
    assert [e.id for _, _, blob in left for e in wire.load_events(blob)] == [f"wamid.{i}" for i in range(100, 300)]
    # Ids only grow, even past what was forgotten.
    assert (await again.add(b"[]"))[0] > ids[-1]
    await again.close()


async def test_a_spool_that_cannot_commit_refuses_the_webhooks_and_one_front_holds_it(tmp_path) -> None:
    import sqlite3

    from whatsagent.errors import ConfigurationError

    path = str(tmp_path / "spool")
    spool = Spool(path)
    await spool.open()
    second = Spool(path)
    with pytest.raises(ConfigurationError, match="already open in another front"):
        await second.open()
    await second.close()
    with sqlite3.connect(path) as other:  # the table is gone: every insert fails
        other.execute("DROP TABLE spool")
    results = await asyncio.gather(*(spool.add(b"[]") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    await spool.close()
    with pytest.raises(StoreUnavailable):
        await spool.add(b"[]")


async def test_webhooks_caught_by_the_spool_closing_are_answered_not_left_waiting(tmp_path) -> None:
    spool = Spool(str(tmp_path / "spool"))
    await spool.open()
    first = [asyncio.create_task(spool.add(b"[]")) for _ in range(3)]
    await asyncio.sleep(0)  # they wait for their batch
    closing = asyncio.create_task(spool.close())
    late = [asyncio.create_task(spool.add(b"[]")) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*first, *late, return_exceptions=True), 30)
    await closing
    assert all(isinstance(r, (tuple, StoreUnavailable)) for r in results), results  # stored, or a 503
    assert all(isinstance(r, StoreUnavailable) for r in results[3:]), results


def fronted_server(emulator: Emulator, db: Path, delay: float) -> ServerProcess:
    """`tests/apps/slow_echo.py` behind a front (``whatsagent serve`` with ``WHATSAGENT_FRONT=1``)."""
    env = {
        **emulator_env(emulator),
        "WHATSAGENT_DATABASE_URL": f"sqlite:///{db}",
        "SLOW_ECHO_DELAY": str(delay),
        "WHATSAGENT_FRONT": "1",
        "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),
    }
    return ServerProcess("tests.apps.slow_echo:os", env=env, cwd=ROOT)


def front_of(server: ServerProcess) -> int:
    children = [
        int(pid)
        for task in Path(f"/proc/{server.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    assert len(children) == 1, children
    return children[0]


async def gone(pid: int) -> None:
    def dead() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    await wait_until(dead, 60, f"process {pid} ended")


class ServedFromCode(ServerProcess):
    """``os.serve(front=True)`` in the user's own script, instead of ``whatsagent serve``."""

    def spawn(self) -> None:
        script = f"from tests.apps.slow_echo import os; os.serve(port={self.port}, front=True, log_level='warning')"
        self.proc = subprocess.Popen([sys.executable, "-c", script], cwd=self.cwd, env=self.env)


@pytest.mark.parametrize("started_by", ["whatsagent serve", "os.serve"])
async def test_behind_a_front_users_are_answered_and_everything_else_reaches_the_bot(tmp_path, started_by) -> None:
    async with Emulator(app_secret="front-secret", access_token="front-token") as emu:
        server = fronted_server(emu, tmp_path / "bot.db", delay=0)
        if started_by == "os.serve":
            server = ServedFromCode(server.target, env=server.env, cwd=ROOT)
        server.env["WHATSAGENT_API_TOKEN"] = "front-operator-token"
        await server.start()
        emu.webhook_url = server.webhook_url
        try:
            ana = emu.user("15556000001")
            assert (await ana.send_text("hello")).ok
            [reply] = await ana.wait_for_replies(1)
            assert reply.text == "echo: hello"
            spool = tmp_path / "bot.db-spool"  # what users wrote, readable by this user only
            assert spool.exists() and spool.stat().st_mode & 0o077 == 0
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{server.url}/ready") as r:
                    assert r.status == 200 and (await r.json())["status"] == "ready"
                async with http.get(f"{server.url}/health") as r:
                    assert r.status == 200 and (await r.json())["store"] == "ok"
                async with http.get(f"{server.url}/metrics") as r:  # the bot's own metrics, through the front
                    exposed = await r.text()
                    assert r.status == 200 and "whatsagent_front_handover_seconds_count 1.0" in exposed
                # Refused at the front, as the bot would refuse it: a wrong signature, a body over the cap.
                body = b'{"object":"whatsapp_business_account","entry":[]}'
                async with http.post(server.webhook_url, data=body, headers={"X-Hub-Signature-256": "sha256=00"}) as r:
                    assert r.status == 403
                async with http.post(server.webhook_url, data=b"x" * (4 * 1024 * 1024)) as r:
                    assert r.status == 413
                async with http.get(
                    server.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "no"}
                ) as r:
                    assert r.status == 403
                # The operator API, bodies and answers passed through both ways.
                bearer = {"Authorization": "Bearer front-operator-token"}
                async with http.post(f"{server.url}/messages/template", data=b"{not json", headers=bearer) as r:
                    assert r.status == 400 and "error" in await r.json()
                too_big = b"x" * (2 * 1024 * 1024)
                async with http.post(f"{server.url}/messages/template", data=too_big, headers=bearer) as r:
                    assert r.status == 413
                async with http.delete(f"{server.url}/users/15556000001", headers=bearer) as r:
                    assert r.status == 200 and (await r.json())["erased"]["inbox"] >= 1
        finally:
            await asyncio.to_thread(server.terminate)
        await assert_left_idle(tmp_path / "bot.db")
        assert len(ana.replies) == 1


async def test_acknowledged_while_the_bot_is_frozen_then_killed_and_answered_once_after_a_restart(tmp_path) -> None:
    async with Emulator(app_secret="front-secret", access_token="front-token") as emu:
        server = fronted_server(emu, tmp_path / "bot.db", delay=0)
        await server.start()
        emu.webhook_url = server.webhook_url
        front = front_of(server)
        users = [emu.user(f"1555610{i:04d}") for i in range(3)]
        os.kill(server.pid, signal.SIGSTOP)  # the bot's process takes nothing in, runs nothing
        sent: dict[str, list[str]] = {u.wa_id: [] for u in users}
        last = None
        for i in range(3):
            for u in users:
                delivery = await u.send_text(f"{u.wa_id} #{i}")
                assert delivery.ok  # acknowledged by the front alone: durable in its spool
                sent[u.wa_id].append(f"{u.wa_id} #{i}")
                last = delivery.message_id
        assert (await emu.redeliver(last)).ok  # Meta delivers one of them again
        server.kill9()  # never woke up; the front ends with it
        await gone(front)
        assert not any(u.replies for u in users)

        restarted = fronted_server(emu, tmp_path / "bot.db", delay=0)
        await restarted.start()
        emu.webhook_url = restarted.webhook_url
        try:
            await wait_until(lambda: all(len(answered_inputs(u)) >= 3 for u in users), 60, "every ack was answered")
        finally:
            await asyncio.to_thread(restarted.terminate)
        await assert_left_idle(tmp_path / "bot.db")
        for u in users:
            assert answered_inputs(u) == sent[u.wa_id]


async def test_a_front_killed_after_acknowledging_is_started_again_and_nothing_is_lost_or_doubled(tmp_path) -> None:
    async with Emulator(app_secret="front-secret", access_token="front-token") as emu:
        server = fronted_server(emu, tmp_path / "bot.db", delay=0)
        await server.start()
        emu.webhook_url = server.webhook_url
        try:
            front = front_of(server)
            ana, ben = emu.user("15556200001"), emu.user("15556200002")
            os.kill(server.pid, signal.SIGSTOP)
            for u in (ana, ben):
                assert (await u.send_text(f"{u.wa_id} first")).ok
            os.kill(front, signal.SIGKILL)  # right after acknowledging, before the bot confirmed anything
            await gone(front)
            os.kill(server.pid, signal.SIGCONT)
            await server.wait_ready()  # a new front took the port again
            assert front_of(server) != front
            for u in (ana, ben):
                assert (await u.send_text(f"{u.wa_id} second")).ok
            await wait_until(lambda: all(len(answered_inputs(u)) >= 2 for u in (ana, ben)), 60, "all answered")
        finally:
            await asyncio.to_thread(server.terminate)
        await assert_left_idle(tmp_path / "bot.db")
        for u in (ana, ben):
            assert answered_inputs(u) == [f"{u.wa_id} first", f"{u.wa_id} second"]


async def test_the_bot_behind_a_front_sees_the_client_the_front_saw_and_no_one_else_can_say_so() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from whatsagent.front.proxy import CLIENT_HEADER, ClientFromFront

    async def who(request):
        return PlainTextResponse(request.client.host if request.client else "unknown")

    app = ClientFromFront(Starlette(routes=[Route("/who", who)]))
    sent = {CLIENT_HEADER.decode(): "127.0.0.1:5000"}
    over_the_socket = httpx.ASGITransport(app=app, client=None)  # how uvicorn presents a Unix socket's client
    async with httpx.AsyncClient(transport=over_the_socket, base_url="http://bot") as http:
        assert (await http.get("/who", headers=sent)).text == "127.0.0.1"
    over_tcp = httpx.ASGITransport(app=app, client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=over_tcp, base_url="http://bot") as http:
        assert (await http.get("/who", headers=sent)).text == "203.0.113.9"  # a forged header counts for nothing


async def hello(ctx) -> str:
    return "hi"


@pytest.mark.parametrize("public_url", [True, False], ids=["TWILIO_PUBLIC_URL set", "learned from webhooks"])
async def test_twilio_users_behind_a_front_are_answered_once_with_or_without_a_public_url(tmp_path, public_url) -> None:
    async with Emulator(app_secret="front-secret", access_token="front-token") as emu:
        account = emu.twilio()
        server = fronted_server(emu, tmp_path / "bot.db", delay=0)
        server.prefix = "/twilio"
        server.env.update(
            {
                "SLOW_ECHO_CHANNEL": "twilio",
                "TWILIO_ACCOUNT_SID": account.account_sid,
                "TWILIO_AUTH_TOKEN": account.auth_token,
                "TWILIO_FROM_NUMBER": account.from_number,
                "TWILIO_API_BASE_URL": emu.base_url,
            }
        )
        if public_url:  # the front takes its webhooks; else they go to the bot's process, which learns the URL
            server.env["TWILIO_PUBLIC_URL"] = server.url
        await server.start()
        emu.webhook_url = server.webhook_url
        try:
            ana = emu.user("15556300001")
            if public_url:  # taken by the front alone, while the bot's process is frozen
                os.kill(server.pid, signal.SIGSTOP)
            assert (await ana.send_text("one")).ok
            os.kill(server.pid, signal.SIGCONT)
            assert (await ana.send_text("two")).ok
            await wait_until(lambda: len(answered_inputs(ana)) >= 2, 60, "both were answered")
            async with aiohttp.ClientSession() as http:  # a forged form is refused either way
                async with http.post(server.webhook_url, data={"Body": "hi", "From": "whatsapp:+1555"}) as r:
                    assert r.status == 403
        finally:
            await asyncio.to_thread(server.terminate)
        await assert_left_idle(tmp_path / "bot.db")
        assert answered_inputs(ana) == ["one", "two"]


@pytest.mark.parametrize(
    ("database", "reload", "refusal"),
    [
        ("postgresql+psycopg://127.0.0.1/test", False, "the front is for one machine on SQLite"),
        ("sqlite:///{tmp}/bot.db", True, "the front and reload=True do not go together"),
    ],
)
def test_the_front_is_refused_where_it_cannot_work(database, reload, refusal, tmp_path, capsys) -> None:
    from whatsagent import AgentOS
    from whatsagent.channels import CloudAPI

    channel = CloudAPI(agent=hello, access_token="t", phone_number_id="1", verify_token="v", app_secret="s")
    agent_os = AgentOS(channels=[channel], database=database.format(tmp=tmp_path))
    with pytest.raises(SystemExit):
        agent_os.serve(front=True, reload=reload)
    assert refusal in capsys.readouterr().err


def text_webhook(wamid: str, body: str) -> bytes:
    message = {"from": "15550001111", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": body}}
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"}, "messages": [message]}
    hook = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(hook).encode()


async def test_a_front_whose_bot_is_far_behind_answers_503_and_keeps_what_it_acknowledged(
    tmp_path, monkeypatch
) -> None:
    from whatsagent.front import link

    monkeypatch.setattr(link, "MAX_PENDING", 3)
    from whatsagent.front.process import front_app

    channel = CloudAPI(agent=None, access_token="t", phone_number_id="1", verify_token="v", verify_signatures=False)
    app = front_app(
        [channel],
        backend=str(tmp_path / "none.sock"),
        link=str(tmp_path / "nobody.sock"),
        spool_path=str(tmp_path / "spool"),
    )
    statuses = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as http:
            for i in range(5):
                body = text_webhook(f"wamid.{i}", f"m{i}")
                statuses.append((await http.post("/whatsapp/webhook", content=body)).status_code)
    assert statuses == [200, 200, 200, 503, 503]  # Meta delivers the last two again later
    again = Spool(str(tmp_path / "spool"))
    left = await again.open()
    assert [e.id for _, _, blob in left for e in wire.load_events(blob)] == ["wamid.0", "wamid.1", "wamid.2"]
    await again.close()

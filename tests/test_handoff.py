"""Human handoff end to end through the emulator: takeover stops the bot, the operator's reply reaches the
user and the agent's history, hand-back resumes the bot; the agent and the user can ask for a person."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from whatsagent import Agent, TurnContext
from whatsagent.handoff import Handoff
from whatsagent.store.schema import operator_actions, turns
from whatsagent.testing import BotHarness, scripted_model, tool_call
from whatsagent.tools.handoff import HandoffTools

TOKEN = "operator-secret"


class Operator:
    """The operator API, as a script would call it."""

    def __init__(self, bot: BotHarness, name: str = "Rosa") -> None:
        self.bot = bot
        self.headers = {"Authorization": f"Bearer {TOKEN}", "X-Operator": name}

    async def call(self, method: str, path: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.bot.url + path, json=body, headers={**self.headers, **headers}) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    async def conversation_id(self, name: str) -> str:
        _, listed = await self.call("GET", "/operator/conversations")
        [found] = [c for c in listed["conversations"] if c["name"] == name]
        return found["id"]


async def test_takeover_stops_the_bot_the_operator_answers_and_hand_back_resumes_with_the_history(tmp_path):
    seen_history: list[str] = []

    async def agent(ctx: TurnContext) -> str:
        seen_history.append(" | ".join(str(m) for m in ctx.history))
        return f"bot: {ctx.text}"

    async with BotHarness(agent, tmp_path, api_token=TOKEN) as bot:
        op = Operator(bot)
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        conversation = await op.conversation_id("Ana")

        status, answer = await op.call("POST", f"/operator/conversations/{conversation}/takeover")
        assert status == 200 and answer == {"mode": "human", "bot_turn_running": False}
        await ana.send_text("I want to talk to someone")
        await bot.idle()
        assert [r.text for r in ana.replies] == ["bot: hi"]  # no bot answer while taken over

        status, answer = await op.call("POST", f"/operator/conversations/{conversation}/reply", {"text": "Rosa here!"})
        assert status == 200 and answer["status"] == "sent"
        assert ana.last_reply.text == "Rosa here!"

        status, _ = await op.call("POST", f"/operator/conversations/{conversation}/hand-back")
        assert status == 200
        await ana.send_text("thanks, bye")
        await ana.wait_for_replies(3)
        assert ana.last_reply.text == "bot: thanks, bye"
        # Handed back, the agent saw what the user and the operator said while it was quiet.
        assert "I want to talk to someone" in seen_history[-1] and "Rosa here!" in seen_history[-1]
        await bot.idle()

        _, view = await op.call("GET", f"/operator/conversations/{conversation}")
        assert view["mode"] == "bot" and view["number"] == "…4567"
        assert [t["status"] for t in view["turns"]][:3] == ["sent", "operator", "human"]
        assert [(a["operator"], a["action"]) for a in reversed(view["actions"])] == [
            ("Rosa", "takeover"),
            ("Rosa", "reply"),
            ("Rosa", "hand_back"),
        ]
        revealed = await op.call("GET", f"/operator/conversations/{conversation}?reveal=1")
        assert revealed[1]["number"] == "15551234567"

        # Erasing the user erases what operators did in their conversation too.
        status, erased = await op.call("DELETE", "/users/15551234567")
        assert status == 200 and erased["erased"]["operator_actions"] == 3
        logged = await bot.os.db.read(lambda c: c.execute(select(operator_actions.c.id)).all())
        assert logged == []


async def test_operator_api_access_and_origin(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        op = Operator(bot)
        conversation = await op.conversation_id("Ana")
        wrong = {"Authorization": "Bearer nope"}
        assert (await op.call("GET", "/operator/conversations", **wrong))[0] == 401
        path = f"/operator/conversations/{conversation}/takeover"
        assert (await op.call("POST", path, Origin="https://evil.example"))[0] == 403
        status, _ = await op.call("POST", f"/operator/conversations/{conversation}/reply", {"text": "x"})
        assert status == 409  # the bot answers it: take it over first
        assert (await op.call("POST", path, Origin=bot.url))[0] == 200
        assert (await op.call("GET", "/operator/conversations?q=ana"))[1]["conversations"][0]["status"] == "human"
        assert (await op.call("GET", "/operator/conversations?q=4567"))[1]["conversations"]
        assert not (await op.call("GET", "/operator/conversations?q=zed"))[1]["conversations"]
    async with BotHarness(echo, tmp_path / "off") as bot:
        async with aiohttp.ClientSession() as http:
            for path in ("/operator/conversations", "/console"):
                async with http.get(bot.url + path) as resp:
                    assert resp.status == 404


class Hook:
    """A notification receiver on loopback."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict] = asyncio.Queue()

    async def __aenter__(self) -> Hook:
        app = web.Application()

        async def take(request: web.Request) -> web.Response:
            await self.received.put(json.loads(await request.read()))
            return web.Response(status=204)

        app.router.add_post("/hook", take)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_the_agent_hands_off_the_user_is_told_and_a_notification_goes_out(tmp_path, caplog):
    agent = Agent(
        model=scripted_model(tool_call("handoff", reason="refund over the limit"), "", "never said"),
        tools=[HandoffTools()],
    )
    async with Hook() as hook:
        policy = Handoff(message="A colleague will take it from here.", notify_url=hook.url)
        async with BotHarness(agent, tmp_path, api_token=TOKEN, handoff=policy) as bot:
            ana = bot.user("15551234567", name="Ana")
            await ana.send_text("I want my 500 euros back")
            await ana.wait_for_replies(1)
            await bot.idle()
            assert [r.text for r in ana.replies] == ["A colleague will take it from here."]
            note = await asyncio.wait_for(hook.received.get(), 30)
            assert note["event"] == "conversation.waiting" and note["reason"] == "refund over the limit"
            assert note["user"] == "…4567" and note["asked_by"] == "agent"
            assert "waits for a person" in caplog.text
            await ana.send_text("hello?")
            await bot.idle()
            assert len(ana.replies) == 1  # waiting: the bot stays quiet
            _, listed = await Operator(bot).call("GET", "/operator/conversations")
            assert listed["conversations"][0]["status"] == "waiting"
            assert listed["conversations"][0]["mode_reason"] == "refund over the limit"


async def test_the_user_asks_for_a_person_with_a_trigger_word(tmp_path, echo):
    policy = Handoff(triggers=("human", "agent"), message="Getting you a person.")
    async with BotHarness(echo, tmp_path, api_token=TOKEN, handoff=policy) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("Human!")
        await ana.wait_for_replies(1)
        assert ana.last_reply.text == "Getting you a person."
        assert echo.seen == []  # the agent never ran
        db = bot.os.db
        who_did = select(operator_actions.c.operator, operator_actions.c.action)
        actions = await db.read(lambda c: c.execute(who_did).all())
        assert [tuple(a) for a in actions] == [("user", "ask_for_person")]


async def test_without_an_operator_the_handoff_tool_tells_the_agent_to_carry_on(tmp_path):
    answers = []
    agent = Agent(model=scripted_model(tool_call("handoff", reason="x"), "I'll keep helping."), tools=[HandoffTools()])
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("a person please")
        [reply] = await ana.wait_for_replies(1)
        answers.append(reply.text)
        await bot.idle()
        modes = await bot.os.db.read(lambda c: c.execute(select(turns.c.status)).scalars().all())
    assert answers == ["I'll keep helping."] and modes == ["sent"]


@pytest.mark.parametrize("action", ["takeover", "hand-back"])
async def test_an_unknown_conversation_is_404(tmp_path, echo, action):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        status, _ = await Operator(bot).call("POST", f"/operator/conversations/0123456789abcdef01234567/{action}")
        assert status == 404


def test_the_demo_token_is_filled_in_only_for_loopback_names():
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from whatsagent.console import console_routes

    demo = TestClient(Starlette(routes=console_routes(TOKEN, None, demo_token=True)), client=("127.0.0.1", 5000))
    assert f'data-demo-token="{TOKEN}"' in demo.get("/console", headers={"Host": "127.0.0.1:8000"}).text
    assert f'data-demo-token="{TOKEN}"' in demo.get("/console", headers={"Host": "localhost:8000"}).text
    rebound = demo.get("/console", headers={"Host": "evil.example:8000"}).text  # DNS rebinding
    assert 'data-demo-token=""' in rebound and TOKEN not in rebound
    remote = TestClient(Starlette(routes=console_routes(TOKEN, None, demo_token=True)), client=("10.0.0.7", 5000))
    assert TOKEN not in remote.get("/console", headers={"Host": "127.0.0.1:8000"}).text
    served = TestClient(Starlette(routes=console_routes(TOKEN, None)), client=("127.0.0.1", 5000))
    assert TOKEN not in served.get("/console").text


async def test_a_failed_message_is_retried_or_discarded_by_the_operator(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        op = Operator(bot)
        ana = bot.user("15551234567", name="Ana")
        bot.emulator.faults.fail_next(2, http_status=400, code=131026)  # "message undeliverable": permanent
        await ana.send_text("first")
        await bot.idle()
        await ana.send_text("second")
        await bot.idle()
        assert ana.replies == []
        conversation = await op.conversation_id("Ana")
        _, listed = await op.call("GET", "/operator/conversations")
        assert listed["conversations"][0]["status"] == "failed"
        _, view = await op.call("GET", f"/operator/conversations/{conversation}")
        failed = {r["message"]["body"]: r for r in view["outbound"]}
        assert {r["status"] for r in failed.values()} == {"failed"} and failed["echo: first"]["error_code"] == 131026

        status, answer = await op.call("POST", f"/operator/outbox/{failed['echo: first']['id']}/retry")
        assert status == 200 and answer == {"status": "sent"}
        assert [r.text for r in ana.replies] == ["echo: first"]
        status, answer = await op.call("POST", f"/operator/outbox/{failed['echo: second']['id']}/discard")
        assert status == 200 and answer == {"status": "discarded"}
        status, _ = await op.call("POST", f"/operator/outbox/{failed['echo: second']['id']}/retry")
        assert status == 409  # only failed or parked messages
        _, view = await op.call("GET", f"/operator/conversations/{conversation}")
        assert sorted(r["status"] for r in view["outbound"]) == ["discarded", "sent"]
        assert [a["action"] for a in reversed(view["actions"])] == ["retry", "discard"]
        assert len(ana.replies) == 1


async def test_the_operator_reads_edits_and_erases_a_users_memories(tmp_path, echo):
    from whatsagent.agents import memory

    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        op = Operator(bot)
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await bot.idle()
        agent = bot.os.responders[bot.channel.name].name
        await bot.os.db.write(memory.apply(agent, memory.user_ref("15551234567"), add=["likes tea", "lives in Lyon"]))
        path = f"/operator/conversations/{await op.conversation_id('Ana')}/memories"
        _, found = await op.call("GET", path)
        facts = {m["fact"]: m["id"] for m in found["memories"]}
        assert set(facts) == {"likes tea", "lives in Lyon"}
        status, _ = await op.call("PATCH", f"{path}/{facts['likes tea']}", {"fact": "likes green tea"})
        assert status == 200
        status, answer = await op.call("DELETE", f"{path}/{facts['lives in Lyon']}")
        assert status == 200 and answer == {"erased": 1}
        assert [m["fact"] for m in (await op.call("GET", path))[1]["memories"]] == ["likes green tea"]
        assert (await op.call("DELETE", path, Origin="https://evil.example"))[0] == 403
        assert (await op.call("DELETE", path))[1] == {"erased": 1}
        assert (await op.call("GET", path))[1]["memories"] == []


async def test_a_poison_turn_shows_why_it_was_set_aside(tmp_path):
    from whatsagent.queue import RetryPolicy

    async def broken(ctx: TurnContext) -> str:
        raise RuntimeError("the model's provider is down")

    async with BotHarness(broken, tmp_path, api_token=TOKEN) as bot:
        bot.os.queue.retry = RetryPolicy(base=0.01)  # type: ignore[union-attr]
        op = Operator(bot)
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hello")
        await ana.wait_for_replies(1)
        await bot.idle()
        _, view = await op.call("GET", f"/operator/conversations/{await op.conversation_id('Ana')}")
        [turn] = view["turns"]
        assert turn["attempts"] == 3 and "failed 3 times" in turn["error"] and "provider is down" in turn["error"]
        assert "provider is down" in view["outbound"][0]["turn_error"]

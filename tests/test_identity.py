"""One user is one conversation whichever identifiers a message carries (wa_id, BSUID, both): a user
whose number WhatsApp starts withholding, or whose number shows up after a username-only start, keeps
their conversation, its history, and the bot's answers go where WhatsApp accepts them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, select

from whatsagent import TurnContext
from whatsagent.store.schema import conversations, user_identities
from whatsagent.testing import BotHarness


class Recorder:
    def __init__(self) -> None:
        self.turns: list[tuple[str, str]] = []
        """(conversation, user key) of every turn: history and memories are kept per conversation
        and user key."""

    async def __call__(self, ctx: TurnContext) -> str:
        self.turns.append((ctx.conversation, ctx.user.key))
        return f"turn {len(self.turns)}"


def rows(bot: BotHarness, table: Any) -> list[dict[str, Any]]:
    engine = create_engine(bot.database)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table))]
    finally:
        engine.dispose()


async def test_a_user_whose_number_is_withheld_later_stays_in_the_same_conversation(tmp_path: Any) -> None:
    agent = Recorder()
    async with BotHarness(agent, tmp_path) as bot:
        emu = bot.emulator
        assert emu is not None
        ana = emu.user("15551234567", "Ana", username="ana")
        await ana.send_text("hi, I'm Ana")
        await ana.wait_for_replies(1)
        await bot.idle()
        emu.user("15551234567", withhold_number=True)  # no recent contact: WhatsApp sends the BSUID only
        await ana.send_text("still me")
        replies = await ana.wait_for_replies(2)
        await bot.idle()
        [(first_conv, first_key), (second_conv, second_key)] = agent.turns
        assert second_conv == first_conv and second_key == first_key == "15551234567"
        assert replies[1].to == ana.key
        [conv] = rows(bot, conversations)
        assert conv["wa_id"] == "15551234567" and conv["user_id"] == ana.user_id


async def test_a_username_only_user_keeps_their_conversation_when_the_number_shows_up(tmp_path: Any) -> None:
    agent = Recorder()
    async with BotHarness(agent, tmp_path) as bot:
        emu = bot.emulator
        assert emu is not None
        dee = emu.user(username="dee", name="Dee")
        bsuid = dee.user_id
        assert dee.wa_id is None and bsuid
        await dee.send_text("hello")
        [reply] = await dee.wait_for_replies(1)
        assert reply.text == "turn 1"
        sent = [r for r in emu.requests if r.path.endswith("/messages") and r.json and r.json.get("type") == "text"]
        assert sent[-1].json["recipient"] == bsuid and "to" not in sent[-1].json  # no number: `recipient`
        await bot.idle()
        # Later messages carry the number too (contact-book window): same user, same conversation.
        assert emu.user("5511987654321", user_id=bsuid) is dee and dee.shown_wa_id == "5511987654321"
        await dee.send_text("my number shows now")
        await dee.wait_for_replies(2)
        await bot.idle()
        [(conv1, key1), (conv2, key2)] = agent.turns
        assert conv1 == conv2 and key1 == key2 == bsuid
        links = {r["identifier"]: r["user_key"] for r in rows(bot, user_identities)}
        assert links == {bsuid: bsuid, "5511987654321": bsuid}


def test_conversations_from_before_are_linked_by_the_migration(tmp_path: Any) -> None:
    from alembic import command
    from sqlalchemy import text

    from whatsagent.store import migrations

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            command.upgrade(migrations.alembic_config(conn), "0005")
            conn.execute(
                text(
                    "INSERT INTO conversations (key, channel, account, user_key, wa_id, user_id, last_inbound_at, "
                    "created_at) VALUES ('wa|15551234567', 'wa', '1', '15551234567', '15551234567', 'US.1', 1, 1), "
                    "('wa|US.2', 'wa', '1', 'US.2', NULL, 'US.2', 2, 2)"
                )
            )
            conn.commit()
            command.upgrade(migrations.alembic_config(conn), "head")
            conn.commit()
            links = {(r.identifier, r.user_key) for r in conn.execute(select(user_identities))}
    finally:
        engine.dispose()
    assert links == {("15551234567", "15551234567"), ("US.1", "15551234567"), ("US.2", "US.2")}


async def test_the_agent_knows_the_users_username(tmp_path: Any) -> None:
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from whatsagent import Agent

    instructions: list[str] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        instructions.append(info.instructions or "")
        return ModelResponse(parts=[TextPart("hello")])

    async with BotHarness(Agent(model=FunctionModel(answer)), tmp_path) as bot:
        assert bot.emulator is not None
        dee = bot.emulator.user(username="dee.codes", name="Dee")
        await dee.send_text("hi")
        await dee.wait_for_replies(1)
    assert "The user's WhatsApp username is dee.codes." in instructions[0]


async def test_a_template_to_the_number_of_a_user_known_by_bsuid_continues_their_conversation(tmp_path: Any) -> None:
    import aiohttp

    agent = Recorder()
    async with BotHarness(agent, tmp_path, api_token="op") as bot:
        emu = bot.emulator
        assert emu is not None
        dee = emu.user(username="dee", name="Dee")
        bsuid = dee.user_id
        await dee.send_text("hello")
        await dee.wait_for_replies(1)
        emu.user("5511987654321", user_id=bsuid)  # the number shows up on the next message
        await dee.send_text("again")
        await dee.wait_for_replies(2)
        await bot.idle()
        body = {"to": "+55 11 98765-4321", "template": "welcome_back", "params": ["Dee"]}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{bot.url}/messages/template", json=body, headers={"Authorization": "Bearer op"}) as r,
        ):
            answer = await r.json()
        assert r.status == 200, answer
        assert answer["conversation"] == agent.turns[0][0] == f"{bot.channel.name}|{bsuid}"  # type: ignore[union-attr]
        [template] = [m for m in await dee.wait_for_replies(3) if m.type == "template"]
        assert template.to == dee.key

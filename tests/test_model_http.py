"""Model providers share one HTTP client: turns reuse connections instead of building a client each time."""

from __future__ import annotations

from fakes.openai_api import FakeOpenAI
from whatsagent import Agent
from whatsagent.model_http import shared_http_client
from whatsagent.testing import BotHarness


def completions_peers(fake: FakeOpenAI) -> list[str]:
    return [r.peer for r in fake.requests_to("/v1/chat/completions")]


async def test_turns_one_after_another_reuse_one_connection_to_an_openai_compatible_server(tmp_path):
    async with FakeOpenAI(api_key="sk-local") as fake:
        fake.reply("first answer").reply("second answer").reply("third answer")
        agent = Agent(model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-local")
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551230001")
            for i, expected in enumerate(["first answer", "second answer", "third answer"]):
                await ana.send_text(f"question {i}")
                await ana.wait_for_replies(i + 1)
                assert ana.replies[-1].text == expected
        peers = completions_peers(fake)
        assert len(peers) == 3
        assert len(set(peers)) == 1, f"each turn opened a new connection: {peers}"


async def test_agents_on_the_same_server_share_one_connection(tmp_path):
    async with FakeOpenAI(api_key="sk-local") as fake:
        fake.reply("from the first").reply("from the second")
        first = Agent(name="first", model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-local")
        second = Agent(name="second", model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-local")
        async with BotHarness(first, tmp_path / "a") as bot:
            await bot.user("15551230002").send_text("hi")
            replies = await bot.user("15551230002").wait_for_replies(1)
            assert replies[-1].text == "from the first"
            async with BotHarness(second, tmp_path / "b") as other:
                await other.user("15551230003").send_text("hi")
                replies = await other.user("15551230003").wait_for_replies(1)
                assert replies[-1].text == "from the second"
        peers = completions_peers(fake)
        assert len(peers) == 2
        assert len(set(peers)) == 1, f"each agent connected on its own: {peers}"


async def test_a_model_string_goes_through_the_shared_client(tmp_path, monkeypatch):
    async with FakeOpenAI(api_key="sk-env") as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        fake.reply("one").reply("two")
        agent = Agent(model="openai-chat:gpt-4o-mini")
        async with BotHarness(agent, tmp_path) as bot:
            bo = bot.user("15551230004")
            await bo.send_text("a")
            await bo.wait_for_replies(1)
            await bo.send_text("b")
            replies = await bo.wait_for_replies(2)
        assert [r.text for r in replies] == ["one", "two"]
        assert len(set(completions_peers(fake))) == 1
        assert agent.pydantic_agent.model.client._client is shared_http_client()  # type: ignore[union-attr]

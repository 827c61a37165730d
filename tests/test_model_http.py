"""Model providers share one HTTP client: turns reuse connections instead of building a client each time."""

from __future__ import annotations

import pytest

from fakes.openai_api import FakeOpenAI, Recorded
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


# -- Chat Completions without the SDK's request transform -------------------------------------------------


def _tools_agent(model: object, **settings: object) -> object:
    from pydantic import BaseModel
    from pydantic_ai import Agent as PydanticAgent

    class Order(BaseModel):
        item: str
        quantity: int

    agent = PydanticAgent(model, instructions="Take orders.", model_settings=settings or None)  # type: ignore[arg-type]

    @agent.tool_plain
    def stock(item: str, size: str | None = None) -> str:
        """How many of an item are in stock."""
        return f"3 {item}"

    return agent, Order


async def _conversation(model: object, fake: FakeOpenAI, **settings: object) -> list[Recorded]:
    from pydantic_ai.messages import BinaryContent
    from pydantic_ai.output import NativeOutput

    agent, order = _tools_agent(model, **settings)
    fake.call_tool("stock", {"item": "bagel"}).reply('{"item": "bagel", "quantity": 2}')
    result = await agent.run(  # type: ignore[attr-defined]
        ["two bagels please", BinaryContent(data=b"\x89PNG\r\n\x1a\n" + b"0" * 32, media_type="image/png")],
        output_type=NativeOutput(order),
    )
    assert result.output.quantity == 2
    fake.reply("plain")
    assert (await agent.run("thanks")).output == "plain"  # type: ignore[attr-defined]
    return fake.requests_to("/v1/chat/completions")


async def test_chat_completions_send_what_the_sdk_sends_without_its_request_transform():
    """whatsagent's models post Chat Completions without the SDK's transform: byte for byte the same JSON
    and the same headers as the SDK's own ``create``, for tools, tool results, images, structured output and
    every model setting."""
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from whatsagent.model_http import provider

    settings = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 300,
        "seed": 7,
        "stop_sequences": ["\n\n\n"],
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "parallel_tool_calls": False,
        "openai_user": "ana",
        "extra_headers": {"X-Shop": "bakery"},
        "extra_body": {"metadata_note": "kept"},
        "timeout": 30,
    }
    sent: dict[str, list[Recorded]] = {}
    for kind in ("sdk", "whatsagent"):
        async with FakeOpenAI(api_key="sk-local") as fake:
            if kind == "sdk":
                built = OpenAIProvider(base_url=fake.base_url, api_key="sk-local", http_client=shared_http_client())
            else:
                built = provider("openai", base_url=fake.base_url, api_key="sk-local")
            sent[kind] = await _conversation(OpenAIChatModel("gpt-4o-mini", provider=built), fake, **settings)
    assert type(built.client.chat.completions).__name__ == "FastCompletions"  # the path under test was taken
    assert len(sent["sdk"]) == len(sent["whatsagent"]) == 3
    ignored = {"x-stainless-retry-count", "x-stainless-read-timeout", "host"}
    for sdk, ours in zip(sent["sdk"], sent["whatsagent"], strict=True):
        assert ours.json == sdk.json
        assert {k.lower(): v for k, v in ours.headers.items() if k.lower() not in ignored} == {
            k.lower(): v for k, v in sdk.headers.items() if k.lower() not in ignored
        }
    first = sent["whatsagent"][0].json or {}
    assert first["tools"][0]["function"]["name"] == "stock"
    assert first["response_format"]["type"] == "json_schema"
    assert first["metadata_note"] == "kept" and first["temperature"] == 0.2
    assert {k.lower(): v for k, v in sent["whatsagent"][0].headers.items()}["x-shop"] == "bakery"


async def test_a_refused_chat_completion_is_reported_once_and_a_failing_one_is_retried():
    from pydantic_ai import Agent as PydanticAgent
    from pydantic_ai.exceptions import ModelHTTPError
    from pydantic_ai.models.openai import OpenAIChatModel

    from whatsagent.model_http import provider

    async with FakeOpenAI(api_key="sk-local") as fake:
        model = OpenAIChatModel("gpt-4o-mini", provider=provider("openai", base_url=fake.base_url, api_key="sk-local"))
        agent = PydanticAgent(model)
        fake.fail(400, "bad request")
        try:
            await agent.run("hi")
        except ModelHTTPError as exc:
            assert exc.status_code == 400
        else:
            raise AssertionError("a 400 must reach the agent as ModelHTTPError")
        assert len(fake.requests_to("/v1/chat/completions")) == 1  # refused: not sent again

        fake.fail(500).reply("after a retry")
        assert (await agent.run("again")).output == "after a retry"  # the SDK's own retry, as before
        assert len(fake.requests_to("/v1/chat/completions")) == 3

        fake.reply("with max_retries set")  # a per-request client copy (pydantic-ai's max_retries setting)
        assert (await agent.run("once more", model_settings={"max_retries": 1})).output == "with max_retries set"

        stream_agent = PydanticAgent(model)
        fake.reply("streamed")
        async with stream_agent.run_stream("stream it") as streamed:
            assert await streamed.get_output() == "streamed"
        assert fake.requests_to("/v1/chat/completions")[-1].json["stream"] is True


def test_a_memory_model_named_by_a_string_goes_through_the_shared_client(monkeypatch):
    from whatsagent.agents.memory import MemoryCapture, UserMemory

    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    agent = Agent(model="test", memory=UserMemory(model="openai-chat:gpt-4o-mini"))
    extractor = MemoryCapture(None, {})._extractor(agent)  # type: ignore[arg-type]
    assert extractor.model.client._client is shared_http_client()


@pytest.mark.parametrize("name", ["openai", "deepseek", "openrouter", "together", "cerebras"])
def test_openai_compatible_providers_post_chat_completions_without_the_transform(name):
    from whatsagent.model_http import provider

    built = provider(name, api_key="k")
    assert type(built.client.chat.completions).__name__ == "FastCompletions"  # type: ignore[attr-defined]
    assert built.client._client is shared_http_client()  # type: ignore[attr-defined]

"""The pytest plugin: a user's bot scripted conversation by conversation, as the README shows it."""

from __future__ import annotations

import pytest

from whatsagent import Agent, Reply, TurnContext
from whatsagent.messages import ButtonReply
from whatsagent.messages.outbound import Button, ButtonsOut, ReactionOut, TemplateOut
from whatsagent.testing import Sandbox, scripted_model, tool_call

pytest_plugins = ["pytester"]


@pytest.fixture
def model():
    return scripted_model("Hello Ana! How can I help?", "Your table is booked for Friday.")


@pytest.fixture
def wa_agent(model):
    return Agent(model=model)


def test_a_scripted_conversation_reads_like_the_chat(wa, model):
    chat = wa.user("Ana")
    chat.send("hi")
    assert chat.last_reply.text == "Hello Ana! How can I help?"
    chat.send("a table for two on Friday")
    assert chat.last_reply.text == "Your table is booked for Friday."
    assert model.prompts == ["hi", "a table for two on Friday"]


def test_the_bot_shows_typing_and_marks_the_message_read(wa):
    chat = wa.user("Ana")
    chat.send("hi")
    assert chat.typing_shown
    assert chat.last_sent.read


async def test_the_same_api_works_in_an_async_test(wa):
    chat = wa.user("Ana")
    [reply] = chat.send("hi")
    assert reply.text == "Hello Ana! How can I help?"


def test_a_redelivered_webhook_is_answered_once(wa, model):
    chat = wa.user("Ana")
    chat.send("only once please")
    wa.run(wa.emulator.redeliver(chat.last_sent.message_id))
    wa.idle()
    assert [r.text for r in chat.replies] == ["Hello Ana! How can I help?"]
    assert model.prompts == ["only once please"]


def test_two_users_have_separate_chats(wa):
    ana, bo = wa.user("Ana"), wa.user("Bo")
    ana.send("hi")
    bo.send("hello")
    assert ana.key != bo.key
    assert len(ana.replies) == len(bo.replies) == 1
    assert wa.user("Ana") is ana


def test_status_webhooks_turn_the_ticks_blue(wa):
    wa.statuses = "read"
    chat = wa.user("Ana")
    chat.send("hi")
    wa.settle()
    assert chat.last_reply.status == "read"


def test_a_scripted_model_calls_a_tool_then_answers(wa):
    booked: list[str] = []

    def book(day: str) -> str:
        """Book a table."""
        booked.append(day)
        return f"booked on {day}"

    model = scripted_model(tool_call("book", day="Friday"), "Done: Friday it is.")
    wa.serve(Agent(model=model, tools=[book]))
    chat = wa.user("Ana")
    chat.send("book Friday")
    assert booked == ["Friday"]
    assert chat.last_reply.text == "Done: Friday it is."


def test_a_model_that_runs_out_of_script_fails_loudly(tmp_path):
    model = scripted_model("only one")
    with Sandbox(tmp_path, Agent(model=model)) as wa:
        chat = wa.user("Ana")
        chat.send("first")
        chat.send("second")
        # The turn failed twice and the user got the apology; the model says why.
        assert "went wrong" in chat.last_reply.text
    with pytest.raises(AssertionError, match="1 step"):
        model._answer([], None)  # type: ignore[arg-type]


async def confirm(ctx: TurnContext) -> Reply:
    last = ctx.messages[-1]
    if isinstance(last, ButtonReply):
        return Reply(
            text=f"You chose {last.title}.",
            messages=[ReactionOut(message_id=last.id, emoji="👍")],
        )
    if "image" in ctx.text.lower():
        return Reply(text=f"Got it: {ctx.text}")
    if ctx.text == "remind me":
        return Reply(messages=[TemplateOut(name="welcome_back", params=(ctx.user.name or "there",))])
    return Reply(
        messages=[
            ButtonsOut(body="Shall I book it?", buttons=(Button(id="y", title="Yes"), Button(id="n", title="No")))
        ]
    )


def test_tapping_a_button_sends_the_interactive_reply(wa):
    wa.serve(confirm)
    chat = wa.user("Ana")
    chat.send("book a table")
    assert [t.title for t in chat.last_reply.tappables] == ["Yes", "No"]
    replies = chat.tap("Yes")
    assert [r.type for r in replies] == ["text", "reaction"]
    assert chat.last_replies[0].text == "You chose Yes."
    assert chat.reactions == {chat.last_sent.message_id: "👍"}


def test_an_image_reaches_the_agent(wa, tmp_path):
    from fakes.media_files import image_bytes

    photo = tmp_path / "menu.png"
    photo.write_bytes(image_bytes("PNG"))
    wa.serve(confirm)
    chat = wa.user("Ana")
    [reply] = chat.send_image(photo, caption="what is this?")
    assert reply.text.startswith("Got it:")
    assert "what is this?" in reply.text


def test_a_template_is_rendered_as_the_user_reads_it_and_its_buttons_tap(wa):
    wa.serve(confirm)
    chat = wa.user("Ana")
    chat.send("remind me")
    assert chat.last_reply.type == "template"
    assert chat.last_reply.template["name"] == "welcome_back"
    assert chat.last_reply.text == "Hi Ana, it has been a while. Would you like to pick up where we left off?"
    chat.tap("Yes, continue")
    assert chat.last_sent.type == "button"


def test_no_agent_says_how_to_give_one(tmp_path):
    with Sandbox(tmp_path) as wa, pytest.raises(RuntimeError, match="wa_agent"):
        wa.user("Ana")


def test_the_plugin_loads_in_a_fresh_project(pytester):
    pytester.makepyfile(
        """
        import pytest
        from whatsagent import Agent
        from whatsagent.testing import scripted_model

        @pytest.fixture
        def wa_agent():
            return Agent(model=scripted_model("Hello!", "Bye!"))

        def test_greeting(wa):
            chat = wa.user("Ana")
            chat.send("hi")
            assert chat.last_reply.text == "Hello!"
            chat.send("bye")
            assert chat.last_reply.text == "Bye!"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)

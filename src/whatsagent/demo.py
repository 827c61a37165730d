"""The demo: a bot and the local WhatsApp emulator in one process, on SQLite, with no accounts.

    whatsagent demo                  # or ./scripts/demo from a fresh clone

The bot is served by a real `AgentOS` (webhooks, inbox, lanes, outbox, sender) on `port`; the emulator
and its chat page on `port + 1`. With no model key in the environment the bot is the offline model,
which says so and echoes what it received, wrapped in a few keyword answers ("menu") that show buttons,
a list, a reaction, a location and WhatsApp formatting. With a key (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ``GOOGLE_API_KEY`` or ``GEMINI_API_KEY``, ``GROQ_API_KEY``, ``MISTRAL_API_KEY``), or
``WHATSAGENT_DEMO_MODEL`` / ``WHATSAGENT_MODEL`` naming any pydantic-ai model, it is a real assistant; the
banner says which, from the model the bot actually runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from whatsagent.agents.agent import Agent
from whatsagent.agents.context import Reply, TurnContext
from whatsagent.agents.models import DEFAULTS_BY_KEY, OFFLINE_NAME, ResolvedModel, offline
from whatsagent.errors import ConfigurationError
from whatsagent.handoff import Handoff
from whatsagent.media.capabilities import capabilities_for
from whatsagent.messages import ButtonReply, ListReply, Text
from whatsagent.messages.outbound import (
    Button,
    ButtonsOut,
    Contact,
    ContactPhone,
    ContactsOut,
    ListOut,
    ListRow,
    ListSection,
    LocationOut,
    OutboundMessage,
    ReactionOut,
)

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.emulator import Emulator

log = logging.getLogger(__name__)

DEMO_DATABASE = "sqlite:///whatsagent-demo.db"
# The emulator's own defaults: the demo needs no real credentials, and these are safe to print.
DEMO_TOKEN = "emulator-token"
DEMO_APP_SECRET = "emulator-app-secret"
DEMO_PHONE_NUMBER_ID = "100200300"
DEMO_VERIFY_TOKEN = "emulator-verify-token"

# Which environment key gives which model; the first one set wins (the same table `Agent()` uses).
# WHATSAGENT_DEMO_MODEL, then WHATSAGENT_MODEL, override.
MODEL_KEYS: tuple[tuple[str, str], ...] = DEFAULTS_BY_KEY
KEY_NAMES = ", ".join(dict.fromkeys(key for key, _ in MODEL_KEYS))

INSTRUCTIONS = [
    "You are the whatsagent demo assistant, chatting on WhatsApp through a local emulator.",
    "Be brief and friendly; WhatsApp messages are short.",
]

MENU_HINT = "Send *menu* to tap buttons and pick from a list."


# -- the bot -----------------------------------------------------------------------------------------


def model_from_environment(environ: dict[str, str] | None = None) -> str | None:
    """The pydantic-ai model the demo should use, or None for the offline model."""
    env = os.environ if environ is None else environ
    for override in ("WHATSAGENT_DEMO_MODEL", "WHATSAGENT_MODEL"):
        if env.get(override):
            return env[override]
    for key, model in MODEL_KEYS:
        if env.get(key):
            return model
    return None


def assistant(model: str) -> Agent:
    """A real assistant on `model`, with memory, WhatsApp tools and (when its key is at hand) images."""
    from whatsagent.tools import ImageTools, WhatsAppTools

    tools: list[Any] = [WhatsAppTools()]
    google = model.startswith(("google:", "google-gla:"))
    images = ImageTools("google:gemini-2.5-flash-image") if google else ImageTools()
    try:
        images.check()
        tools.append(images)
    except ConfigurationError as exc:
        log.info("the demo assistant draws no pictures: %s", exc)
    return Agent(name="Assistant", model=model, instructions=INSTRUCTIONS, add_datetime=True, memory=True, tools=tools)


class DemoAgent(Agent):
    """The offline model plus a few keyword answers, so a visitor has something to tap.

    "menu" (or "help") sends reply buttons; the buttons lead to a list, a reaction, a location, a contact
    card and WhatsApp formatting. Everything else gets the offline model's labelled echo.
    """

    def __init__(self) -> None:
        super().__init__(name="Demo (offline)", model=None)
        # Offline whatever the environment holds: Agent(model=None) would pick a model from a key.
        self._resolved = ResolvedModel(
            None, "function", OFFLINE_NAME, capabilities_for("function"), offline=True, build=offline
        )

    async def respond(self, ctx: TurnContext) -> Reply:
        last = ctx.messages[-1] if ctx.messages else None
        choice = None
        if isinstance(last, ButtonReply):
            choice = last.button_id
        elif isinstance(last, ListReply):
            choice = last.row_id
        elif isinstance(last, Text) and last.body.strip().lower().strip("!.?") in ("menu", "help", "start"):
            choice = "menu"
        if choice is not None and choice in _ANSWERS:
            return _ANSWERS[choice](ctx)
        reply = await super().respond(ctx)
        reply.text = f"{reply.text}\n\n{MENU_HINT}" if reply.text else MENU_HINT
        return reply


def _menu(ctx: TurnContext) -> Reply:
    buttons = ButtonsOut(
        header="whatsagent demo",
        body="I am the offline demo bot. What would you like to see?",
        footer="Tap a button",
        buttons=(
            Button(id="list", title="A list"),
            Button(id="react", title="A reaction"),
            Button(id="format", title="Formatting"),
        ),
    )
    return Reply(messages=[buttons])


def _list(ctx: TurnContext) -> Reply:
    rows = ListSection(
        title="Message kinds",
        rows=(
            ListRow(id="location", title="A location", description="A pin on a map"),
            ListRow(id="contact", title="A contact card", description="Someone to call"),
            ListRow(id="format", title="Formatting", description="Bold, italic, code, lists"),
            ListRow(id="menu", title="Back to the menu"),
        ),
    )
    return Reply(messages=[ListOut(body="Pick something for me to send.", button="Choose", sections=(rows,))])


def _react(ctx: TurnContext) -> Reply:
    messages: list[OutboundMessage] = [ReactionOut(message_id=ctx.last_message_id, emoji="❤️")]
    return Reply(
        text="I reacted to your tap. React to any of my messages and I will see it next turn.", messages=messages
    )


def _format(ctx: TurnContext) -> Reply:
    # Markdown in, WhatsApp formatting out: the renderer does the translation, as it does for a real model.
    return Reply(
        text=(
            "**Bold**, *italic*, ~~strikethrough~~ and `inline code`.\n\n"
            "- a bullet\n- another bullet\n\n"
            "1. first\n2. second\n\n"
            "> a quote\n\n"
            "```\nprint('a code block')\n```"
        )
    )


def _location(ctx: TurnContext) -> Reply:
    pin = LocationOut(latitude=38.7223, longitude=-9.1393, name="Praça do Comércio", address="Lisbon, Portugal")
    return Reply(messages=[pin])


def _contact(ctx: TurnContext) -> Reply:
    card = Contact(
        name="whatsagent support",
        first_name="whatsagent",
        phones=(ContactPhone(phone="+1 555 000 1111", label="WORK"),),
    )
    return Reply(messages=[ContactsOut(contacts=(card,))])


_ANSWERS = {
    "menu": _menu,
    "list": _list,
    "react": _react,
    "format": _format,
    "location": _location,
    "contact": _contact,
}


def demo_agent(environ: dict[str, str] | None = None) -> tuple[Agent, str | None]:
    """The demo's bot and its model name (None: offline). A model whose provider package is missing
    falls back to the offline bot, with a warning saying what to install."""
    model = model_from_environment(environ)
    if model is None:
        return DemoAgent(), None
    problem = _unusable(model)
    if problem is not None:
        log.warning("cannot use %s (%s); the demo runs the offline bot instead", model, problem)
        return DemoAgent(), None
    return assistant(model), model


# The SDK each provider's model needs: found (not imported: that waits for the first turn) at start-up.
_SDKS = {  # provider: (its SDK's module, whatsagent's extra installing it)
    "openai": ("openai", "openai"),
    "openai-chat": ("openai", "openai"),
    "openai-responses": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "google": ("google.genai", "google"),
    "google-gla": ("google.genai", "google"),
    "groq": ("groq", "groq"),
    "mistral": ("mistralai", "mistral"),
}


def _unusable(model: str) -> str | None:
    """Why `model` cannot run here (its provider's SDK is not installed, an unknown provider), or None:
    said now, not at the first message."""
    import importlib.util

    sdk = _SDKS.get(model.partition(":")[0])
    if sdk is None:
        try:
            from pydantic_ai.models import infer_model

            infer_model(model)  # another provider: pydantic-ai knows whether it can build it
        except Exception as exc:
            return str(exc)
        return None
    try:
        found = importlib.util.find_spec(sdk[0]) is not None
    except ImportError:  # a parent package missing (google)
        found = False
    return None if found else f"its SDK is not installed: pip install 'whatsagent[{sdk[1]}]'"


# -- serving -----------------------------------------------------------------------------------------


@dataclass
class Demo:
    """A running demo: the emulator (with its chat page) and the bot's server, in this event loop."""

    emulator: Emulator
    os: AgentOS
    bot_url: str
    model: str | None
    _server: Any
    _task: asyncio.Task[None]

    @property
    def page_url(self) -> str:
        return f"{self.emulator.base_url}/"

    async def wait(self) -> None:
        """Until the bot's server exits (Ctrl-C or SIGTERM: uvicorn shuts it down gracefully)."""
        await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.emulator.stop()


def _bind(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} for the {what} ({exc.strerror}): pick another "
            "port, e.g. whatsagent demo --port 8010"
        ) from exc
    return sock


async def start_demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    database: str = DEMO_DATABASE,
    *,
    page_port: int | None = None,
    agent: Any = None,
    environ: dict[str, str] | None = None,
) -> Demo:
    """Start the emulator on `page_port` (default `port + 1`; 0 picks a free one) and the bot on `port`."""
    import uvicorn

    from whatsagent.app import AgentOS
    from whatsagent.channels.cloudapi import CloudAPI
    from whatsagent.emulator import Emulator, StatusPolicy

    model: str | None = None
    if agent is None:
        agent, model = demo_agent(environ)
    bot_socket = _bind(host, port, "bot")
    bot_port = bot_socket.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    emulator = Emulator(
        phone_number_id=DEMO_PHONE_NUMBER_ID,
        access_token=DEMO_TOKEN,
        app_secret=DEMO_APP_SECRET,
        webhook_url=f"http://{shown}:{bot_port}/whatsapp/webhook",
        verified_name="whatsagent demo",
        statuses=StatusPolicy(delay=0.4),  # a visible pace, so the ticks turn blue on the page
    )
    try:
        await emulator.start(host, bot_port + 1 if page_port is None else page_port)
    except OSError as exc:
        bot_socket.close()
        raise ConfigurationError(
            f"cannot start the emulator's chat page ({exc}): pick another port, e.g. whatsagent demo --port 8010"
        ) from exc
    channel = CloudAPI(
        agent=agent,
        access_token=DEMO_TOKEN,
        phone_number_id=DEMO_PHONE_NUMBER_ID,
        verify_token=DEMO_VERIFY_TOKEN,
        app_secret=DEMO_APP_SECRET,
        api_base_url=emulator.base_url,
    )
    # The business's side: the operator console, one click from the chat page. Its token is filled in
    # for pages opened from this machine only (`console_fills_token`); "human" or "agent" asks for a person.
    token = (environ if environ is not None else os.environ).get("WHATSAGENT_API_TOKEN") or secrets.token_urlsafe(24)
    agent_os = AgentOS(
        channels=[channel],
        database=database,
        merge_window=0.3,
        api_token=token,
        handoff=Handoff(triggers=("human", "agent", "person")),
    )
    agent_os.console_fills_token = True
    emulator.console_url = f"http://{shown}:{bot_port}/console"
    config = uvicorn.Config(agent_os.get_app(), log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[bot_socket]))
    while not server.started:
        if task.done():
            await emulator.stop()
            task.result()  # raises the start-up error
            raise ConfigurationError("the demo bot stopped during start-up")
        await asyncio.sleep(0.01)
    return Demo(emulator, agent_os, f"http://{shown}:{bot_port}", model, server, task)


def banner(demo: Demo) -> str:
    """What the demo prints: the page's URL and, from the model the bot really runs, what it is."""
    served = next(iter(demo.os.responders.values()))
    resolved = served.resolved
    offline = resolved.offline if resolved is not None else demo.model is None
    if offline:
        what = (
            "The bot runs the offline model: not an AI, it says so and echoes what you send (try 'menu' for "
            f"buttons and lists). For a real assistant set one of {KEY_NAMES} (or WHATSAGENT_MODEL) and restart."
        )
    else:
        label = f"{resolved.provider}:{resolved.name}" if resolved is not None else demo.model
        what = f"The bot is a real assistant on {label}."
    return (
        f"\n  whatsagent demo — chat with your bot at  {demo.page_url}\n"
        f"  and answer as the business in the console at  {demo.bot_url}/console\n\n"
        f"  {what}\n"
        f"  (bot at {demo.bot_url}, data in {demo.os.database_url}; Ctrl-C stops)\n"
    )


async def serve_demo(host: str = "127.0.0.1", port: int = 8000, database: str = DEMO_DATABASE) -> None:
    """Run the demo until cancelled."""
    demo = await start_demo(host, port, database)
    print(banner(demo), flush=True)
    try:
        await demo.wait()
    finally:
        await demo.stop()


def run_demo(host: str = "127.0.0.1", port: int = 8000, database: str = DEMO_DATABASE) -> None:
    """The `whatsagent demo` command: serve the demo until Ctrl-C."""
    try:
        asyncio.run(serve_demo(host, port, database))
    except KeyboardInterrupt:
        pass
    except ConfigurationError as exc:
        print(f"whatsagent demo: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc

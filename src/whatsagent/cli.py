"""The `whatsagent` command."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from whatsagent.errors import ConfigurationError

app = typer.Typer(
    name="whatsagent",
    help="Put AI agents on WhatsApp: every message answered exactly once, in order.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True)


class Misuse(Exception):
    """A command used wrongly: printed as one line, exit code 2."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from whatsagent import __version__

        typer.echo(f"whatsagent {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Put AI agents on WhatsApp: every message answered exactly once, in order."""


def _port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _check_port(host: str, port: int, what: str) -> None:
    if port and _port_in_use(host, port):
        raise Misuse(f"port {port} on {host} is already in use (another {what} running?): stop it, or pass --port")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )


def load_os(target: str) -> Any:
    """Import ``module:attribute`` (the AgentOS, or a function returning one) from the current directory.
    Anything else is a `Misuse` saying what to point at instead."""
    from whatsagent.app import AgentOS

    module_name, _, attr = target.partition(":")
    if not module_name or module_name.endswith(".py"):
        raise Misuse(f"{target!r}: expected module:attribute, e.g. myapp:os (for myapp.py)")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise Misuse(f"no module {module_name!r} in {os.getcwd()}: run from its directory") from exc
        raise Misuse(f"importing {module_name!r} failed: {exc}") from exc
    candidates = [attr] if attr else ["os", "agent_os", "agentos"]
    name = next((n for n in candidates if hasattr(module, n)), None)
    if name is None:
        raise Misuse(f"{module_name!r} has no {' or '.join(candidates)}: point at your AgentOS, e.g. {module_name}:os")
    obj = getattr(module, name)
    if not isinstance(obj, AgentOS) and inspect.isfunction(obj):
        obj = obj()
    if isinstance(obj, AgentOS):
        return obj
    found = next((n for n, v in vars(module).items() if isinstance(v, AgentOS)), None)
    instead = f"{module_name}:{found}" if found else f"{module_name}:os"
    what = type(obj).__name__
    if hasattr(obj, "router") and callable(obj):
        kind = f"the ASGI app ({what}); whatsagent serve takes the AgentOS"
    elif what in ("Agent", "Team"):
        kind = f"an {what}; whatsagent serve takes the AgentOS that serves it"
    else:
        kind = f"a {what}, not an AgentOS"
    raise Misuse(f"{module_name}:{name} is {kind}: use {instead}")


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="Your AgentOS as module:attribute, e.g. myapp:os")],
    host: Annotated[
        str, typer.Option(help="Interface to listen on: loopback by default; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", envvar="PORT")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    reload: Annotated[bool, typer.Option("--reload", help="Restart when your code changes (development).")] = False,
    role: Annotated[
        str | None,
        typer.Option(
            help="web (webhooks only), worker (turns and sends) or all (both, the default). "
            "web and worker need PostgreSQL.",
            envvar="WHATSAGENT_ROLE",
        ),
    ] = None,
    front: Annotated[
        bool,
        typer.Option(
            "--front",
            help="Acknowledge webhooks in a process of their own, so busy turns never delay them (SQLite; "
            "also WHATSAGENT_FRONT=1).",
        ),
    ] = False,
) -> None:
    """Serve an AgentOS: webhooks, turns and sends in one process, or one role of several processes."""
    from whatsagent import heap

    _setup_logging(log_level)
    started = None
    from whatsagent.front import wanted

    if wanted(front or None) and not reload:
        from whatsagent.front.supervisor import Front

        try:
            _check_port(host, port, "server")
        except Misuse as exc:
            raise _fail(str(exc)) from None
        # The front loads the app while this process does (a second for each, on two cores at once).
        started = Front(host=host, port=port, log_level=log_level)
        started.start()
    # No garbage collection while the app loads: the server resumes it once ready. (With --reload this
    # process only watches files; its server child starts afresh.)
    try:
        with heap.start_up(paused=not reload):
            try:
                agent_os = _load_with_role(target, role)
                if started is None:
                    _check_port(host, port, "server")
                agent_os.validate()
            except ConfigurationError as exc:
                raise _fail(f"configuration: {exc}") from None
            except Misuse as exc:
                raise _fail(str(exc)) from None
            agent_os.serve(host=host, port=port, log_level=log_level, reload=reload, front=started or front or None)
    finally:
        if started is not None:
            started.stop()  # a no-op once the server stopped it; else it was never served


@app.command()
def doctor(
    target: Annotated[str, typer.Argument(help="Your AgentOS as module:attribute, e.g. myapp:os")],
    webhook_url: Annotated[
        str | None, typer.Option(help="The webhook URL Meta calls, to check it answers the verification.")
    ] = None,
) -> None:
    """Check a setup without serving it: settings, access token, database and migrations, media
    conversion, webhook verification. One line per check; exit code 1 when something is wrong."""
    import asyncio

    from whatsagent.doctor import diagnose, report

    _setup_logging("error")
    try:
        agent_os = load_os(target)
    except ConfigurationError as exc:
        raise _fail(f"configuration: {exc}") from None
    except Misuse as exc:
        raise _fail(str(exc)) from None
    code = report(asyncio.run(diagnose(agent_os, webhook_url=webhook_url)), typer.echo)
    raise typer.Exit(code)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the bot; the emulator's chat page uses port+1.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    database: Annotated[str, typer.Option(help="Where the demo keeps its data.")] = "sqlite:///whatsagent-demo.db",
) -> None:
    """A bot and a local WhatsApp emulator, on SQLite, with no accounts: chat with it in your browser."""
    from whatsagent import heap

    _setup_logging("info")
    with heap.start_up():  # as `serve`: no garbage collection until the bot is ready
        from whatsagent.demo import run_demo

        try:
            _check_port(host, port, "whatsagent demo")
            _check_port(host, port + 1, "whatsagent emulator")
        except Misuse as exc:
            raise _fail(str(exc)) from None
        run_demo(host=host, port=port, database=database)


@app.command()
def emulator(
    port: Annotated[int, typer.Option(help="Port of the emulator (Graph API and chat page).")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    webhook_url: Annotated[
        str, typer.Option(help="Your bot's webhook URL.", envvar="WHATSAPP_EMULATOR_WEBHOOK_URL")
    ] = "http://127.0.0.1:8000/whatsapp/webhook",
    app_secret: Annotated[str, typer.Option(envvar="WHATSAPP_APP_SECRET")] = "emulator-app-secret",
    access_token: Annotated[str, typer.Option(envvar="WHATSAPP_ACCESS_TOKEN")] = "emulator-token",
    phone_number_id: Annotated[str, typer.Option(envvar="WHATSAPP_PHONE_NUMBER_ID")] = "100200300",
    twilio: Annotated[
        bool, typer.Option("--twilio", help="Speak Twilio's WhatsApp wire format (webhooks to /twilio/webhook).")
    ] = False,
) -> None:
    """A local stand-in for WhatsApp's Cloud API, with a chat page, for developing and testing bots."""
    import asyncio

    _setup_logging("info")
    from whatsagent.emulator import run_emulator

    if twilio and webhook_url == "http://127.0.0.1:8000/whatsapp/webhook":
        webhook_url = "http://127.0.0.1:8000/twilio/webhook"
    try:
        _check_port(host, port, "whatsagent emulator")
    except Misuse as exc:
        raise _fail(str(exc)) from None
    asyncio.run(
        run_emulator(
            host=host,
            port=port,
            webhook_url=webhook_url,
            app_secret=app_secret,
            access_token=access_token,
            phone_number_id=phone_number_id,
            twilio=twilio,
        )
    )


def _load_with_role(target: str, role: str | None) -> Any:
    from whatsagent.roles import resolve_role

    if role is not None:
        os.environ["WHATSAGENT_ROLE"] = role  # for an AgentOS built at import time
    agent_os = load_os(target)
    if role is not None:
        agent_os.role = resolve_role(role, agent_os.database_url)
    return agent_os


db_app = typer.Typer(name="db", help="The database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app)


@db_app.command("upgrade")
def db_upgrade(
    database: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///file.db or postgresql+psycopg://user@host/db (default sqlite:///whatsagent.db).",
            envvar="WHATSAGENT_DATABASE_URL",
        ),
    ] = None,
    revision: Annotated[str, typer.Option(help="The revision to reach.")] = "head",
) -> None:
    """Migrate the database to the newest schema (with procrastinate's queue on PostgreSQL).

    Development servers do this at start-up; in production run it as a deployment step, before the new
    release starts, with WHATSAGENT_AUTO_MIGRATE=0 on the servers."""
    from whatsagent.app import DEFAULT_DATABASE
    from whatsagent.privacy import redacted
    from whatsagent.store.migrations import revision_of, upgrade

    _setup_logging("warning")
    url = database or DEFAULT_DATABASE
    try:
        changed = upgrade(url, revision)
    except Exception as exc:
        console.print(f"[red]Migration of {redacted(url)} failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    now = revision_of(url)
    typer.echo(f"{redacted(url)}: {'migrated to' if changed else 'already at'} revision {now}")


_DATABASE_ENV = "WHATSAGENT_DATABASE_URL"
_MEDIA_ENV = "WHATSAGENT_MEDIA_DIR"


@app.command()
def erase(
    user: Annotated[str, typer.Argument(help="The user's WhatsApp number (digits) or business-scoped id.")],
    database: Annotated[
        str | None,
        typer.Option(
            help="The bot's database URL (default sqlite:///whatsagent.db).", envvar="WHATSAGENT_DATABASE_URL"
        ),
    ] = None,
    media_dir: Annotated[
        str | None,
        typer.Option(help="The bot's media folder (default: as the bot finds it).", envvar="WHATSAGENT_MEDIA_DIR"),
    ] = None,
) -> None:
    """Erase a user: their conversations on every channel, messages, answers, statuses, memories, queued
    jobs and the media those name. Works on a stopped bot's database (or a running one's PostgreSQL)."""
    import asyncio

    from whatsagent.app import DEFAULT_DATABASE, _media_directory
    from whatsagent.lifecycle import erase_user
    from whatsagent.media.store import FileMediaStore
    from whatsagent.store.database import open_database

    _setup_logging("warning")
    url = database or DEFAULT_DATABASE

    async def run() -> dict[str, int]:
        db = open_database(url)
        await db.start()
        try:
            return await erase_user(db, user.lstrip("+"), FileMediaStore(media_dir or _media_directory(url)))
        finally:
            await db.close()

    counts = asyncio.run(run())
    typer.echo("erased: " + ", ".join(f"{n} {table}" for table, n in counts.items()))


@app.command()
def send(
    template: Annotated[str, typer.Option(help="Name of an approved template, e.g. order_update.")],
    to: Annotated[str, typer.Option(help="The user's phone number (any format) or business-scoped id.")],
    param: Annotated[
        list[str] | None, typer.Option(help="A body parameter ({{1}}, {{2}}, ... in order); repeat for several.")
    ] = None,
    language: Annotated[str, typer.Option(help="The template's language code.")] = "en_US",
    channel: Annotated[str | None, typer.Option(help="The channel's name, when the bot serves several.")] = None,
    text: Annotated[
        str | None, typer.Option(help="What the user reads, so the agent knows what they are answering.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Idempotency key: sending again with it sends nothing.")] = None,
    url: Annotated[
        str, typer.Option(help="The running bot's base URL.", envvar="WHATSAGENT_URL")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(help="The operator API token of the bot.", envvar="WHATSAGENT_API_TOKEN")
    ] = None,
) -> None:
    """Send a template to a user through a running bot: it opens a conversation the agent continues."""
    import asyncio

    import aiohttp

    if not token:
        console.print("[red]No API token:[/red] pass --token or set WHATSAGENT_API_TOKEN (the bot's api_token).")
        raise typer.Exit(2)
    body: dict[str, Any] = {"to": to, "template": template, "language": language, "params": param or []}
    for name, value in (("channel", channel), ("text", text), ("key", key)):
        if value is not None:
            body[name] = value

    async def post() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url.rstrip('/')}/messages/template",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=120),
            ) as r,
        ):
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, {"error": await r.text()}

    try:
        status, answer = asyncio.run(post())
    except aiohttp.ClientError as exc:
        console.print(f"[red]Cannot reach the bot at {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    if status != 200:
        console.print(f"[red]Not sent ({status}):[/red] {answer.get('error', answer)}")
        raise typer.Exit(1)
    state = answer.get("status")
    detail = f"message {answer.get('message_id')}" if state == "sent" else "held back"
    console.print(f"{template} to {to}: {state} ({detail}); conversation {answer.get('conversation')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

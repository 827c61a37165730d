"""The `whatsagent` command: one line for every misuse, --version and -h, and `doctor` checking a setup."""

from __future__ import annotations

import gc
import socket

import pytest
from typer.testing import CliRunner

from whatsagent import Agent, AgentOS, __version__
from whatsagent.channels import CloudAPI
from whatsagent.cli import app
from whatsagent.doctor import diagnose
from whatsagent.testing import BotHarness

MYAPP = """
from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI

async def echo(ctx):
    return ctx.text

assistant = Agent(name="Assistant", model="openai:gpt-4o")
os = AgentOS(
    agents=[echo],
    channels=[CloudAPI(agent=echo, access_token="t", phone_number_id="1", app_secret="s", verify_token="v",
                       api_base_url="http://127.0.0.1:{port}")],
    database="sqlite:///{db}",
)
app = os.get_app()
"""


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def myapp(tmp_path, monkeypatch):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    (tmp_path / "myapp.py").write_text(MYAPP.format(port=port, db=tmp_path / "bot.db"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path


def test_version_and_short_help():
    assert run("--version").output.strip() == f"whatsagent {__version__}"
    assert run("-h").exit_code == 0 and "serve" in run("-h").output
    assert "doctor" in run("-h").output


def test_serving_the_asgi_app_or_the_agent_says_what_to_point_at(myapp):
    assert "myapp:app is the ASGI app (FastAPI)" in one_line_error(run("serve", "myapp:app"))
    assert "use myapp:os" in one_line_error(run("serve", "myapp:app"))
    line = one_line_error(run("serve", "myapp:assistant"))
    assert "myapp:assistant is an Agent" in line and "use myapp:os" in line
    assert "no module 'nothere'" in one_line_error(run("serve", "nothere:os"))
    assert "expected module:attribute" in one_line_error(run("serve", "myapp.py"))
    assert gc.isenabled(), "serve pauses garbage collection while it loads the app: a failed start resumes it"


@pytest.mark.parametrize("command", ["emulator", "serve"])
def test_a_busy_port_is_one_line(myapp, command):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["serve", "myapp:os"] if command == "serve" else ["emulator"]
        line = one_line_error(run(*args, "--host", "127.0.0.1", "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is already in use" in line


def test_a_missing_key_or_database_directory_is_one_line(myapp, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (myapp / "keyless.py").write_text(
        (myapp / "myapp.py")
        .read_text()
        .replace("agents=[echo]", "agents=[assistant]")
        .replace("agent=echo", "agent=assistant")
        .replace("app = os.get_app()", "")
    )
    assert "OPENAI_API_KEY is not set" in one_line_error(run("serve", "keyless:os", "--port", "0"))
    (myapp / "nodir.py").write_text(
        (myapp / "myapp.py").read_text().replace("bot.db", "myapp.py/bot.db").replace("app = os.get_app()", "")
    )
    assert "myapp.py is a file" in one_line_error(run("serve", "nodir:os", "--port", "0"))


def test_doctor_reports_one_line_per_check_and_fails_on_an_unreachable_graph_api(myapp):
    result = run("doctor", "myapp:os")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("ok   settings:")
    assert lines[1].startswith("FAIL access token (cloudapi:1): cannot reach http://127.0.0.1:")
    assert lines[2].startswith("ok   database (") and "created at revision" in lines[2]
    assert lines[3].startswith("ok   media conversion:")
    assert lines[4].startswith("skip webhook verification")
    assert lines[-1] == "1 problem(s) found"


async def test_doctor_against_the_emulator_and_a_running_bot(tmp_path):
    async def echo(ctx):
        return ctx.text

    async with BotHarness(echo, tmp_path) as bot:
        checks = await diagnose(bot.os, webhook_url=f"{bot.url}/whatsapp/webhook")
        assert [c.outcome for c in checks] == ["ok"] * 5, [c.line for c in checks]
        assert "accepted by" in checks[1].detail
        assert "the newest" in checks[2].detail, "the running bot migrated its database"

        channel = bot.build_channel(bot.url)
        channel.access_token = "expired"  # type: ignore[attr-defined]
        channel.verify_token = "wrong"  # type: ignore[attr-defined]
        other = AgentOS(agents=[echo], channels=[channel], database=bot.database)
        checks = await diagnose(other, webhook_url=f"{bot.url}/whatsapp/webhook")
        assert checks[1].outcome == "fail" and "access token is refused" in checks[1].detail
        assert checks[-1].outcome == "fail" and "HTTP 403" in checks[-1].detail


def test_doctor_names_a_missing_model_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent_os = AgentOS(
        agents=[Agent(model="openai:gpt-4o")],
        channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
        database=f"sqlite:///{tmp_path}/x.db",
    )
    from whatsagent.doctor import _settings

    settings = _settings(agent_os)
    assert settings.outcome == "fail" and "OPENAI_API_KEY" in settings.detail


def test_python_myapp_without_its_key_says_so_in_one_line(tmp_path, monkeypatch):
    import subprocess
    import sys

    readme_app = MYAPP.format(port=9, db=tmp_path / "bot.db")
    readme_app = readme_app.replace("agents=[echo]", "agents=[assistant]").replace("agent=echo", "agent=assistant")
    (tmp_path / "myapp.py").write_text(readme_app + '\nif __name__ == "__main__":\n    os.serve(port=0)\n')
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run([sys.executable, "myapp.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "whatsagent: configuration: agent 'Assistant' uses openai:gpt-4o but OPENAI_API_KEY is not set: "
        "export it, or pass api_key=... to Agent"
    ]


async def test_doctor_reads_a_twilio_account_back_from_the_emulator(tmp_path):
    from whatsagent.channels.twilio import Twilio
    from whatsagent.emulator import Emulator

    async def echo(ctx):
        return ctx.text

    emu = Emulator()
    account = emu.twilio()
    await emu.start()
    try:

        def twilio(**changes: str) -> AgentOS:
            settings = dict(account_sid=account.account_sid, auth_token=account.auth_token, api_base_url=emu.base_url)
            channel = Twilio(
                agent=echo, from_number=account.from_number, public_url="https://bot.example", **settings | changes
            )
            return AgentOS(channels=[channel], database=f"sqlite:///{tmp_path}/bot.db")

        checks = await diagnose(twilio())
        assert checks[1].outcome == "ok", checks[1].line
        assert checks[1].detail == f"accepted by {emu.base_url} for account whatsagent emulator"
        assert checks[-1].outcome == "skip"  # Twilio webhooks have no verification handshake

        refused = (await diagnose(twilio(auth_token="wrong")))[1]
        assert refused.outcome == "fail" and "Auth Token are refused (code 20003)" in refused.detail

        unreachable = (await diagnose(twilio(api_base_url="http://127.0.0.1:9")))[1]
        assert unreachable.outcome == "fail" and unreachable.detail.startswith("cannot reach http://127.0.0.1:9")
    finally:
        await emu.stop()

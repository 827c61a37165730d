"""A process is a web receiver, a worker, or both; SQLite allows only both."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from whatsagent import AgentOS
from whatsagent.channels.cloudapi import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.roles import Role, resolve_role


def channel() -> CloudAPI:
    async def agent(ctx):  # type: ignore[no-untyped-def]
        return "hi"

    return CloudAPI(
        agent=agent,
        access_token="token",
        phone_number_id="100200300",
        verify_token="verify",
        app_secret="secret",
        api_base_url="http://127.0.0.1:9",
    )


def test_sqlite_refuses_separate_web_and_worker_processes_saying_what_to_use(tmp_path: Path):
    with pytest.raises(ConfigurationError, match=r"needs PostgreSQL.*WHATSAGENT_DATABASE_URL"):
        AgentOS(channels=[channel()], database=f"sqlite:///{tmp_path / 'a.db'}", role="web")


def test_the_role_comes_from_the_environment_and_defaults_to_all(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WHATSAGENT_ROLE", raising=False)
    assert resolve_role(None, "postgresql+psycopg://db/x") is Role.ALL
    monkeypatch.setenv("WHATSAGENT_ROLE", "Worker")
    assert resolve_role(None, "postgresql+psycopg://db/x") is Role.WORKER
    with pytest.raises(ConfigurationError, match="not one of web, worker, all"):
        resolve_role("cook", "postgresql+psycopg://db/x")


@pytest.mark.parametrize(("role", "webhooks"), [("web", True), ("worker", False), ("all", True)])
def test_each_role_serves_webhooks_or_not_and_always_health(postgres_url: str, role: str, webhooks: bool):
    agent_os = AgentOS(channels=[channel()], database=postgres_url, role=role)
    with TestClient(agent_os.get_app()) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["queue_depth"] == 0
        verify = client.get(
            "/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "verify", "hub.challenge": "42"}
        )
        assert (verify.status_code == 200) is webhooks
        assert (agent_os.queue.work if agent_os.queue is not None else None) is (role != "web")  # type: ignore[attr-defined]

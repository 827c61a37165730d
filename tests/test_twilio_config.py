"""Configuring a Twilio channel: from arguments or TWILIO_* variables, and errors that say what to fix."""

from __future__ import annotations

import os

import pytest

from whatsagent.channels.base import Channel
from whatsagent.channels.twilio import Twilio
from whatsagent.errors import ConfigurationError

SID = "AC" + "0" * 32
ENV = {
    "TWILIO_ACCOUNT_SID": SID,
    "TWILIO_AUTH_TOKEN": "secret-token",
    "TWILIO_FROM_NUMBER": "whatsapp:+14155238886",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TWILIO_"):
            monkeypatch.delenv(name)


def test_a_channel_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TWILIO_PUBLIC_URL", "https://bot.example.com/")
    monkeypatch.setenv("TWILIO_CONTENT_SIDS", '{"welcome": "HX' + "1" * 32 + '"}')
    monkeypatch.setenv("TWILIO_TRUST_FORWARDED_HEADERS", "yes")
    channel = Twilio()
    channel.validate()
    assert isinstance(channel, Channel)
    assert channel.provider == "twilio"
    assert channel.text_limit == 1600
    assert channel.account == "whatsapp:+14155238886"
    assert channel.name == "twilio:whatsapp:+14155238886"
    assert channel.prefix == "/twilio"
    assert channel.public_url == "https://bot.example.com"
    assert channel.trust_forwarded_headers is True
    assert channel.content_sids == {"welcome": "HX" + "1" * 32}
    assert channel.verify_signatures is True
    assert channel.status_callback is True
    paths = [route.path for route in channel.routes(lambda events: None)]  # type: ignore[arg-type, return-value]
    assert paths == ["/twilio/webhook", "/twilio/status", "/twilio/media/{key:path}"]


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    channel = Twilio(from_number="+15550001111", name="support", prefix="tw2/")
    assert channel.from_number == "whatsapp:+15550001111"
    assert channel.name == "support"
    assert channel.prefix == "/tw2"


def test_content_sids_can_be_listed_as_name_equals_sid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_CONTENT_SIDS", "welcome=HXa, order_update = HXb")
    assert Twilio().content_sids == {"welcome": "HXa", "order_update": "HXb"}


def test_validate_names_every_missing_setting_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Twilio().validate()
    message = str(caught.value)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        assert name in message
    assert "account_sid=" in message


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"account_sid": "SK123"}, "must start with AC"),
        ({"from_number": "whatsapp:14155238886"}, "not a WhatsApp sender"),
        ({"api_key_sid": "SK" + "1" * 32}, "go together"),
        ({"api_key_sid": "AC1", "api_key_secret": "x"}, "must start with SK"),
        ({"public_url": "bot.example.com"}, "TWILIO_PUBLIC_URL"),
        ({"public_url": "https://bot.example.com/?a=1"}, "without a query string"),
        ({"content_sids": {"welcome": "welcome"}}, "not a Content SID"),
        ({"status_callback": "ftp://x"}, "TWILIO_STATUS_CALLBACK"),
    ],
)
def test_wrong_settings_are_named_with_what_is_expected(settings: dict, words: str) -> None:
    options = {"account_sid": SID, "auth_token": "t", "from_number": "whatsapp:+14155238886", **settings}
    with pytest.raises(ConfigurationError, match=words):
        Twilio(**options).validate()


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("TWILIO_TRUST_FORWARDED_HEADERS", "maybe", "neither true nor false"),
        ("TWILIO_CONTENT_SIDS", "{not json", "not valid JSON"),
        ("TWILIO_CONTENT_SIDS", "welcome", "not name=HX"),
    ],
)
def test_unreadable_environment_values_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    for key, env_value in ENV.items():
        monkeypatch.setenv(key, env_value)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=words):
        Twilio().validate()


def test_signature_checks_and_status_callbacks_can_be_switched_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_SKIP_SIGNATURE_VALIDATION", "true")
    monkeypatch.setenv("TWILIO_STATUS_CALLBACK", "false")
    channel = Twilio()
    assert channel.verify_signatures is False
    assert channel.status_callback is False
    monkeypatch.setenv("TWILIO_STATUS_CALLBACK", "https://hooks.example.com/status")
    assert Twilio().status_callback == "https://hooks.example.com/status"
    assert Twilio(verify_signatures=True).verify_signatures is True

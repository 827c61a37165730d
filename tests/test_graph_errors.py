"""Graph API errors are typed, and the retry rules follow Meta's meaning of each code."""

from __future__ import annotations

import json
import statistics

import pytest

from whatsagent.channels.cloudapi.errors import graph_error
from whatsagent.errors import SendError
from whatsagent.sender import SendPolicy


def meta_error(code: int, message: str = "x", details: str = "") -> bytes:
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "AbCdEf",
            }
        }
    ).encode()


@pytest.mark.parametrize(
    ("http_status", "code", "retryable"),
    [
        (429, 130429, True),  # throughput exceeded
        (400, 131056, True),  # pair rate limit
        (400, 80007, True),  # WABA rate limit
        (500, 131000, True),  # something went wrong
        (503, 2, True),  # service overloaded
        (401, 190, False),  # token expired
        (400, 131047, False),  # outside the 24-hour window: a template is needed, not a retry
        (400, 131026, False),  # undeliverable
        (400, 100, False),  # invalid parameter
        (400, 132000, False),  # template parameter count
    ],
)
def test_each_error_code_says_whether_trying_again_can_help(http_status, code, retryable):
    error = graph_error(http_status, meta_error(code, details="why"))
    assert isinstance(error, SendError)
    assert error.code == code
    assert error.retryable is retryable
    assert error.trace_id == "AbCdEf"
    assert "why" in str(error)


def test_a_5xx_without_a_json_body_is_retryable():
    error = graph_error(502, b"<html>Bad gateway</html>")
    assert error.retryable and error.code is None and error.http_status == 502


def test_retry_after_is_honoured():
    error = graph_error(429, meta_error(130429), retry_after="7")
    assert SendPolicy(base=0.1).delay(error, 1) >= 7


def test_the_pair_rate_limit_waits_4_to_the_n_seconds():
    error = graph_error(400, meta_error(131056))
    policy = SendPolicy(pair_limit_base=1.0)
    for attempt, expected in ((1, 1), (2, 4), (3, 16), (4, 64)):
        delays = [policy.delay(error, attempt) for _ in range(200)]
        assert 0.75 * expected <= min(delays) and max(delays) <= 1.25 * expected
        assert statistics.pstdev(delays) > 0, "jitter spreads retries"


def test_other_retries_back_off_exponentially_up_to_a_cap():
    error = graph_error(500, meta_error(131000))
    policy = SendPolicy(base=0.5, cap=4)
    assert [round(policy.delay(error, n) / (0.5 * 2 ** (n - 1)), 1) <= 1.25 for n in (1, 2, 3)] == [True] * 3
    assert max(policy.delay(error, 10) for _ in range(50)) <= 4 * 1.25


@pytest.mark.parametrize(
    ("http_status", "code", "flag"),
    [
        (401, 190, "token_refused"),
        (401, 0, "token_refused"),
        (400, 131047, "window_closed"),
        (400, 131056, "slow_down"),
    ],
)
def test_the_channel_says_what_a_code_means_so_the_core_reads_flags_not_codes(http_status, code, flag):
    error = graph_error(http_status, meta_error(code))
    flags = {"token_refused", "window_closed", "slow_down"}
    assert getattr(error, flag) is True
    assert not any(getattr(error, other) for other in flags - {flag})
    if flag == "token_refused":
        assert "WHATSAPP_ACCESS_TOKEN" in error.hint


def test_twilio_errors_carry_the_same_flags_and_name_twilios_settings():
    from whatsagent.channels.twilio.errors import send_error

    refused = send_error(401, {"code": 20003, "message": "Authenticate"}, {})
    assert refused.token_refused and "TWILIO_AUTH_TOKEN" in refused.hint and "WHATSAPP" not in refused.hint
    closed = send_error(400, {"code": 63016, "message": "outside the window"}, {})
    assert closed.window_closed and not closed.token_refused and not closed.retryable

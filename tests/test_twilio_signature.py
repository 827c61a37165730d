"""X-Twilio-Signature is checked exactly as Twilio computes it.

Every expectation is computed by the `twilio` package's own `RequestValidator` (or the fake's independent
signer), never by the code under test.
"""

from __future__ import annotations

import hashlib
import random
import string

import pytest
from twilio.request_validator import RequestValidator

from fakes.twilio_api import sign as fake_sign
from whatsagent.channels.twilio import signature

TOKEN = "12345"
URL = "https://bot.example.com/twilio/whatsapp?tenant=a"
PARAMS = {
    "Body": "hi",
    "From": "whatsapp:+14155550100",
    "To": "whatsapp:+14155238886",
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "NumMedia": "0",
}
VECTOR = "NbaOnoohXOTXC9JtUh/+FmEf+Bg="


def test_the_reference_test_vector_signs_and_validates() -> None:
    assert RequestValidator(TOKEN).compute_signature(URL, PARAMS) == VECTOR
    assert signature.compute_signature(TOKEN, URL, PARAMS.items()) == VECTOR
    assert signature.is_valid(TOKEN, URL, VECTOR, PARAMS.items())


def test_a_signature_from_another_token_or_a_changed_parameter_is_refused() -> None:
    assert not signature.is_valid("54321", URL, VECTOR, PARAMS.items())
    tampered = dict(PARAMS, Body="hi!")
    assert not signature.is_valid(TOKEN, URL, VECTOR, tampered.items())
    extra = dict(PARAMS, Extra="1")
    assert not signature.is_valid(TOKEN, URL, VECTOR, extra.items())
    assert not signature.is_valid(TOKEN, URL, "", PARAMS.items())
    assert not signature.is_valid(TOKEN, URL, None, PARAMS.items())
    assert not signature.is_valid(TOKEN, URL, "é" * 28, PARAMS.items())


def test_the_same_request_is_valid_with_the_default_port_and_invalid_over_http() -> None:
    with_port = "https://bot.example.com:443/twilio/whatsapp?tenant=a"
    over_http = "http://bot.example.com/twilio/whatsapp?tenant=a"
    validator = RequestValidator(TOKEN)
    assert validator.validate(with_port, PARAMS, VECTOR)
    assert signature.is_valid(TOKEN, with_port, VECTOR, PARAMS.items())
    assert not validator.validate(over_http, PARAMS, VECTOR)
    assert not signature.is_valid(TOKEN, over_http, VECTOR, PARAMS.items())


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://bot.example.com:443/hook", "https://bot.example.com/hook"),
        ("https://bot.example.com/hook", "https://bot.example.com:443/hook"),
        ("http://bot.example.com:80/hook", "http://bot.example.com/hook"),
        ("http://bot.example.com/hook", "http://bot.example.com:80/hook"),
        ("https://bot.example.com:8443/hook", "https://bot.example.com:8443/hook"),
        ("https://bot.example.com/hook", "https://bot.example.com:8443/hook"),
        ("https://bot.example.com:8443/hook", "https://bot.example.com/hook"),
        ("https://bot.example.com:443/hook", "http://bot.example.com/hook"),
        ("https://bot.example.com/hook?a=1&b=2", "https://bot.example.com/hook?b=2&a=1"),
        ("https://bot.example.com/hook", "https://bot.example.com/hook/"),
    ],
)
def test_ports_and_schemes_are_judged_as_twilios_sdk_judges_them(signed_url: str, received_url: str) -> None:
    sig = RequestValidator(TOKEN).compute_signature(signed_url, PARAMS)
    expected = RequestValidator(TOKEN).validate(received_url, PARAMS, sig)
    assert signature.is_valid(TOKEN, received_url, sig, PARAMS.items()) is expected


def test_an_ipv6_host_keeps_its_address_when_the_port_is_dropped() -> None:
    # The SDK splits the host at the first colon, which breaks IPv6 literals; the rule itself is the same.
    sig = RequestValidator(TOKEN).compute_signature("https://[2001:db8::1]/hook", PARAMS)
    assert signature.is_valid(TOKEN, "https://[2001:db8::1]:443/hook", sig, PARAMS.items())
    assert not signature.is_valid(TOKEN, "https://[2001:db8::2]:443/hook", sig, PARAMS.items())


def test_random_forms_agree_with_the_sdk_and_with_the_fakes_signer() -> None:
    rng = random.Random(6)
    alphabet = string.ascii_letters + string.digits + " +:/=&?%é😀\n"
    validator = RequestValidator("token-" + "x" * 26)
    for _ in range(200):
        names = ["Body", "From", "MediaUrl0", "ProfileName", "ButtonPayload", "Latitude", "b", "B", "_"]
        params = {
            rng.choice(names) + str(rng.randint(0, 3)): "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
            for _ in range(rng.randint(0, 8))
        }
        url = rng.choice(["https://a.example/x", "https://a.example/x?y=1", "http://127.0.0.1:8000/t/webhook"])
        sig = validator.compute_signature(url, params)
        assert signature.compute_signature(validator.token.decode(), url, params.items()) == sig
        assert fake_sign(validator.token.decode(), url, params.items()) == sig
        assert signature.is_valid(validator.token.decode(), url, sig, params.items())


class _MultiDict(dict):
    """What Flask hands the SDK for a form whose names repeat."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


def test_a_repeated_parameter_is_signed_value_by_value_in_sorted_order() -> None:
    pairs = [("MediaUrl", "https://b.example/2"), ("Body", "x"), ("MediaUrl", "https://a.example/1")]
    expected = RequestValidator(TOKEN).compute_signature(URL, _MultiDict(pairs))
    assert signature.compute_signature(TOKEN, URL, pairs) == expected
    assert signature.is_valid(TOKEN, URL, expected, pairs)
    assert fake_sign(TOKEN, URL, pairs) == expected


def test_a_json_body_is_checked_through_body_sha256_and_the_bare_url() -> None:
    body = '{"MessageSid":"SM1","Body":"hi"}'
    url = f"https://bot.example.com/twilio/webhook?bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    sig = RequestValidator(TOKEN).compute_signature(url, {})
    assert RequestValidator(TOKEN).validate(url, body, sig)
    assert signature.is_valid(TOKEN, url, sig, json_body=body.encode())
    assert not signature.is_valid(TOKEN, url, sig, json_body=body.replace("hi", "ho").encode())
    no_hash = "https://bot.example.com/twilio/webhook"
    assert not signature.is_valid(
        TOKEN, no_hash, RequestValidator(TOKEN).compute_signature(no_hash, {}), json_body=body.encode()
    )


def test_webhook_rules_sign_with_hmac_sha256_when_the_settings_header_says_so() -> None:
    header = "key=webhooks_sharedkey_123,algorithm=HMAC_SHA256"
    algorithm = signature.algorithm_of(header)
    assert algorithm == "HMAC_SHA256"
    sig = RequestValidator("shared-secret").compute_signature(URL, PARAMS, "HMAC_SHA256")
    assert signature.is_valid("shared-secret", URL, sig, PARAMS.items(), algorithm=algorithm)
    assert not signature.is_valid("shared-secret", URL, sig, PARAMS.items())
    assert signature.algorithm_of(None) == "HMAC_SHA1"
    assert not signature.is_valid("shared-secret", URL, sig, PARAMS.items(), algorithm="HMAC_MD5")

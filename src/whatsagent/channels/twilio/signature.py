"""`X-Twilio-Signature`: how Twilio signs the webhooks it sends, and how a request is checked.

Twilio signs the full URL it called (scheme, host, path, query string) followed by every POST parameter,
sorted by name, as `name + value` with no separators; HMAC-SHA1 keyed with the account Auth Token,
base64-encoded (https://www.twilio.com/docs/usage/webhooks/webhooks-security; twilio-python's
`twilio/request_validator.py`). This module reproduces that byte for byte; the tests check
it against the `twilio` package's own `RequestValidator`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
"""Announces a Webhook Rule's SharedKey signature: ``key=<id>,algorithm=HMAC_SHA256`` (twilio-node's
https://github.com/twilio/twilio-node/blob/main/examples/WebhookSignatureValidation.md)."""

HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_DIGESTS = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}
_DEFAULT_PORTS = {"https": 443, "http": 80}

Params = Iterable[tuple[str, str]]
"""Decoded form parameters in the order received; a name may repeat."""


def compute_signature(key: str, url: str, params: Params = (), *, algorithm: str = HMAC_SHA1) -> str:
    """The signature Twilio sends for a request to `url` with these form parameters."""
    digest = _DIGESTS.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported Twilio signature algorithm {algorithm!r}")
    signed = url + "".join(name + value for name, value in _sorted(params))
    mac = hmac.new(key.encode(), signed.encode(), digest)
    return base64.b64encode(mac.digest()).decode()


def is_valid(
    key: str,
    url: str,
    signature: str | None,
    params: Params = (),
    *,
    json_body: bytes | None = None,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """Whether `signature` is Twilio's for this request, compared in constant time.

    For a form POST pass its `params`. For a JSON body pass the raw bytes as `json_body`: Twilio then puts
    the body's hex SHA-256 in the URL's `bodySHA256` query parameter and signs the URL alone.
    """
    if not signature or algorithm.upper() not in _DIGESTS:
        return False
    expected = signature.encode()
    if json_body is not None:
        body_hash = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
        actual_hash = hashlib.sha256(json_body).hexdigest()
        if not hmac.compare_digest(actual_hash.encode(), body_hash.encode()):
            return False
        params = ()
    params = list(params)
    try:
        candidates = url_variants(url)
    except ValueError:  # a Host header no URL parser takes ("[::1"): not a URL Twilio signed
        return False
    matches = [
        hmac.compare_digest(compute_signature(key, candidate, params, algorithm=algorithm).encode(), expected)
        for candidate in candidates
    ]
    return any(matches)


def algorithm_of(settings_header: str | None) -> str:
    """The algorithm a `X-Twilio-Webhooks-Signature-Settings` header names; HMAC-SHA1 when absent."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return HMAC_SHA1


def url_variants(url: str) -> tuple[str, ...]:
    """`url` as given, without its port and with the scheme's default port.

    Twilio's own signing is inconsistent about ports, so its SDK accepts a signature over either form
    (twilio-python's `twilio/request_validator.py`); we accept the same set, no more.
    """
    parts = urlsplit(url)
    host = parts.netloc
    userinfo, at, hostport = host.rpartition("@")
    prefix = userinfo + at
    bare = _strip_port(hostport)
    variants = [url, urlunsplit(parts._replace(netloc=prefix + bare))]
    if bare == hostport and parts.scheme in _DEFAULT_PORTS:
        with_port = f"{prefix}{bare}:{_DEFAULT_PORTS[parts.scheme]}"
        variants.append(urlunsplit(parts._replace(netloc=with_port)))
    return tuple(dict.fromkeys(variants))


def _strip_port(hostport: str) -> str:
    if hostport.startswith("["):  # IPv6 literal: [::1]:8080
        end = hostport.find("]")
        return hostport[: end + 1] if end != -1 else hostport
    host, sep, port = hostport.rpartition(":")
    return host if sep and port.isdigit() else hostport


def _sorted(params: Params) -> Iterator[tuple[str, str]]:
    # Repeated names are signed value by value, sorted; an exact repeat counts once, as in Twilio's SDK.
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    for name in sorted(by_name):
        for value in sorted(by_name[name]):
            yield name, value

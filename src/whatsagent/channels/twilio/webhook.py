"""The inbound HTTP edge: read a Twilio webhook, check its signature against the public URL, decode it.

Twilio signs the URL *it* called. Behind a proxy or TLS terminator the server sees another one
(``http://internal:8000/...``), so the public URL is rebuilt from a configured base (preferred) or, when
the operator trusts its proxy, from `X-Forwarded-Proto`/`X-Forwarded-Host`
(https://www.twilio.com/docs/usage/webhooks/webhooks-security; twilio/twilio-python#751).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

import orjson
from starlette.requests import Request

from whatsagent.channels.twilio import signature
from whatsagent.errors import MalformedWebhook

MAX_FIELDS = 1000
"""Twilio's WhatsApp webhooks carry a few dozen parameters; far more is not Twilio."""


@dataclass(frozen=True)
class Webhook:
    """A received webhook: the URL Twilio signed, its decoded parameters and the raw JSON body, if any."""

    url: str
    params: list[tuple[str, str]]
    json_body: bytes | None = None

    @property
    def form(self) -> dict[str, str]:
        """First value of each parameter."""
        form: dict[str, str] = {}
        for name, value in self.params:
            form.setdefault(name, value)
        return form

    def is_signed_by(self, key: str, header: str | None, algorithm: str) -> bool:
        return signature.is_valid(
            key,
            self.url,
            header,
            () if self.json_body is not None else self.params,
            json_body=self.json_body,
            algorithm=algorithm,
        )


def public_base(request: Request, *, public_url: str | None, trust_forwarded_headers: bool) -> str:
    """Scheme and host (and any path prefix) of the URL Twilio called, without a trailing slash."""
    if public_url:
        return public_url.rstrip("/")
    headers = request.headers
    scheme = request.scope.get("scheme", "http")
    host = headers.get("host") or _server_host(request)
    if trust_forwarded_headers:
        scheme = _first(headers.get("x-forwarded-proto")) or scheme
        host = _first(headers.get("x-forwarded-host")) or host
    return f"{scheme}://{host}"


def request_url(request: Request, base: str) -> str:
    """`base` followed by the path and query string exactly as they arrived on the request line."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.scope["path"])
    query = request.scope.get("query_string", b"").decode("latin-1")
    return base + path + (f"?{query}" if query else "")


def decode(request: Request, url: str, body: bytes) -> Webhook:
    """Form-encoded parameters (what Twilio sends for messaging), or a flat JSON object signed through
    `bodySHA256`. Raises MalformedWebhook for anything else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedWebhook(f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise MalformedWebhook("JSON webhook body must be an object")
        params = [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in payload.items()]
        return Webhook(url=url, params=params, json_body=body)
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise MalformedWebhook(f"expected a form-encoded body, got Content-Type {content_type!r}")
    try:
        text = body.decode("utf-8")
        params = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=MAX_FIELDS
        )
    except UnicodeDecodeError:
        raise MalformedWebhook("form body is not UTF-8") from None
    except ValueError as exc:
        raise MalformedWebhook(f"form body is not valid: {exc}") from None
    return Webhook(url=url, params=params)


def _first(value: str | None) -> str | None:
    # A chain of proxies appends: "https, http". The first is what the client (Twilio) used.
    if not value:
        return None
    return value.split(",")[0].strip() or None


def _server_host(request: Request) -> str:
    server = request.scope.get("server")
    if not server:
        return "localhost"
    host, port = server
    return f"{host}:{port}"

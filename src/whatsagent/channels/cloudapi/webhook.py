"""The inbound HTTP edge: Meta's subscription check (GET) and the decoding of a signed webhook (POST).

Meta verifies a webhook URL with ``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge``, and
posts events as JSON signed with ``X-Hub-Signature-256``
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint).
A payload is at most 3 MB
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from whatsagent.errors import MalformedWebhook

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 3 * 1024 * 1024
"""Meta's largest webhook payload; anything bigger is not from Meta."""
WEBHOOK_OBJECT = "whatsapp_business_account"
SIGNATURE_HEADER = "x-hub-signature-256"


def verify_subscription(request: Request, verify_token: str | None, channel: str) -> Response:
    """Answer Meta's GET check: the challenge when the verify token matches, else 403 (or 400)."""
    q = request.query_params
    mode, token, challenge = q.get("hub.mode"), q.get("hub.verify_token"), q.get("hub.challenge")
    if mode != "subscribe" or not token or not verify_token:
        return PlainTextResponse("expected hub.mode=subscribe and hub.verify_token", status_code=403)
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        log.warning("webhook verification for %r refused: the verify token does not match", channel)
        return PlainTextResponse("verify token does not match", status_code=403)
    if challenge is None:
        return PlainTextResponse("hub.challenge is missing", status_code=400)
    return PlainTextResponse(challenge)


def decode(raw: bytes) -> dict[str, Any]:
    """The webhook's JSON object; MalformedWebhook (answered 400 with its text) for anything else."""
    if not raw:
        raise MalformedWebhook("empty body: expected a JSON webhook")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedWebhook(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"webhook body must be a JSON object, got {type(payload).__name__}")
    return payload


def is_whatsapp(payload: dict[str, Any]) -> bool:
    """Whether the webhook is WhatsApp traffic (not another product's subscription on the same app)."""
    return payload.get("object") == WEBHOOK_OBJECT

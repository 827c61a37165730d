"""Handing a webhook's events to the inbox, and the one answer when they could not be stored.

A webhook is acknowledged only once its events are durable. When the store cannot take them, every
channel answers the same 503 so the provider delivers the webhook again later: Meta redelivers for days
(https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview), Twilio
when the URL asks for retries (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.responses import PlainTextResponse, Response

from whatsagent.channels.base import Accept
from whatsagent.errors import StoreUnavailable
from whatsagent.messages import Event

log = logging.getLogger(__name__)

NOT_STORED = "store unavailable, retry later"


async def hand_over(accept: Accept, events: Sequence[Event], *, channel: str) -> Response | None:
    """Store `events` through `accept`: None when they are durable, else the 503 to answer."""
    if not events:
        return None
    try:
        await accept(events)
    except StoreUnavailable as exc:
        log.error("webhook for %r not stored, asking for redelivery: %s", channel, exc)
    except Exception:  # a bug past the parser must not become a 500 the provider files as our outage
        log.exception("webhook for %r not stored, asking for redelivery", channel)
    else:
        return None
    return PlainTextResponse(NOT_STORED, status_code=503)

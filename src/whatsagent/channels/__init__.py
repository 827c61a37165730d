"""WhatsApp channels: Meta's Cloud API and Twilio, behind the same neutral messages."""

from typing import Any

from whatsagent.channels.base import Channel
from whatsagent.channels.cloudapi import CloudAPI

__all__ = ["Channel", "CloudAPI", "Twilio"]


def __getattr__(name: str) -> Any:
    if name == "Twilio":  # imported on first use: a Cloud API-only bot does not load it
        from whatsagent.channels.twilio import Twilio

        return Twilio
    raise AttributeError(name)

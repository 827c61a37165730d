"""Tools for agents on WhatsApp: `WhatsAppTools` (send messages of every kind to the current user),
`ImageTools` (generate and edit images, sent to the user) and `HandoffTools` (ask for a person). All are
pydantic-ai toolsets: pass them in `Agent(tools=[...])`. Provider SDKs load only when a tool runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whatsagent.tools.handoff import HandoffTools
    from whatsagent.tools.image import ImageTools
    from whatsagent.tools.whatsapp import WhatsAppTools

__all__ = ["HandoffTools", "ImageTools", "WhatsAppTools"]


def __getattr__(name: str) -> Any:
    if name == "WhatsAppTools":
        from whatsagent.tools.whatsapp import WhatsAppTools

        return WhatsAppTools
    if name == "ImageTools":
        from whatsagent.tools.image import ImageTools

        return ImageTools
    if name == "HandoffTools":
        from whatsagent.tools.handoff import HandoffTools

        return HandoffTools
    raise AttributeError(name)

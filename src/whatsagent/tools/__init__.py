"""Tools for agents on WhatsApp: `WhatsAppTools` (send messages of every kind to the current user) and
`ImageTools` (generate and edit images, sent to the user). Both are pydantic-ai toolsets: pass them in
`Agent(tools=[...])`. Provider SDKs load only when a tool runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whatsagent.tools.image import ImageTools
    from whatsagent.tools.whatsapp import WhatsAppTools

__all__ = ["ImageTools", "WhatsAppTools"]


def __getattr__(name: str) -> Any:
    if name == "WhatsAppTools":
        from whatsagent.tools.whatsapp import WhatsAppTools

        return WhatsAppTools
    if name == "ImageTools":
        from whatsagent.tools.image import ImageTools

        return ImageTools
    raise AttributeError(name)

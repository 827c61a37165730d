"""whatsagent: AI agents on WhatsApp, every message answered exactly once, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whatsagent.agent import Agent, Reply, TurnContext
    from whatsagent.app import AgentOS
    from whatsagent.memory import UserMemory
    from whatsagent.teams import Team

__all__ = ["Agent", "AgentOS", "Reply", "Team", "TurnContext", "UserMemory"]
__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "whatsagent.agent",
    "Reply": "whatsagent.agent",
    "TurnContext": "whatsagent.agent",
    "AgentOS": "whatsagent.app",
    "UserMemory": "whatsagent.memory",
    "Team": "whatsagent.teams",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: `import whatsagent` (and its pytest plugin) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'whatsagent' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

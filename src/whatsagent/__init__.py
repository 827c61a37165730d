"""whatsagent: AI agents on WhatsApp, every message answered exactly once, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from whatsagent.agents.agent import Agent
    from whatsagent.agents.context import Reply, TurnContext
    from whatsagent.agents.memory import UserMemory
    from whatsagent.agents.teams import Team
    from whatsagent.app import AgentOS

__all__ = ["Agent", "AgentOS", "Reply", "Team", "TurnContext", "UserMemory"]
__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "whatsagent.agents.agent",
    "Reply": "whatsagent.agents.context",
    "TurnContext": "whatsagent.agents.context",
    "AgentOS": "whatsagent.app",
    "UserMemory": "whatsagent.agents.memory",
    "Team": "whatsagent.agents.teams",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: `import whatsagent` (and its pytest plugin) stays cheap.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'whatsagent' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

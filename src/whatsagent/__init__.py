"""whatsagent: AI agents on WhatsApp, every message answered exactly once, in order."""

from whatsagent.agent import Agent, Reply, TurnContext
from whatsagent.app import AgentOS

__all__ = ["Agent", "AgentOS", "Reply", "TurnContext"]
__version__ = "0.1.0"

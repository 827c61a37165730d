"""Commands a user types instead of talking to the agent: ``/new``, ``/memories``, ``/forget``.

A turn whose only message is a command is answered by whatsagent itself, without a model call:
``/new`` starts a fresh conversation (the conversation's session is bumped; old turns stay stored but
leave the context), ``/memories`` lists what the agent remembers about the user, ``/forget`` erases it.
The words are configurable (`Commands`), and a command set to None is off (then it reaches the agent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from whatsagent.messages import InboundMessage, Text

CommandName = Literal["new", "memories", "forget"]


@dataclass(frozen=True)
class Commands:
    new: str | None = "/new"
    memories: str | None = "/memories"
    forget: str | None = "/forget"
    new_text: str = "Started a new conversation. What can I do for you?"
    forget_text: str = "Done: I have forgotten everything I remembered about you ({count} facts)."
    no_memories_text: str = "I don't remember anything about you yet."
    memory_off_text: str = "I don't keep memories about you."

    def match(self, messages: list[InboundMessage]) -> CommandName | None:
        """The command a turn consists of, if it is exactly one command message (case-insensitive)."""
        if len(messages) != 1 or not isinstance(messages[0], Text):
            return None
        said = messages[0].body.strip().casefold()
        for name in ("new", "memories", "forget"):
            word = getattr(self, name)
            if word and said == word.casefold():
                return name  # type: ignore[return-value]
        return None

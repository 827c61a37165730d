"""Template failures in words an operator can act on: which template, which language, what is wrong.

Providers answer a bad template send with a bare code; each channel knows its own codes and passes the
problem in words here, so the message whatsagent logs, stores on the outbox row and returns from the
proactive API is worded the same way on every channel.
"""

from __future__ import annotations

from whatsagent.errors import SendError
from whatsagent.messages.outbound import TemplateOut


def refused_template(template: TemplateOut, error: SendError, problem: str | None) -> str:
    """``template 'order_update' (en_US) was refused: <problem>; WhatsApp says: <error>``, or without
    the problem when the channel has no words for the code."""
    what = f"template {template.name!r} ({template.language}) was refused"
    if problem is None:
        return f"{what}: {error}"
    return f"{what}: {problem}; WhatsApp says: {error}"

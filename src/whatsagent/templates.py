"""Template errors in words an operator can act on: which template, which language, what is wrong.

Meta answers a bad template send with a bare code (132000, 132001, ...;
pywa's error list, pywa/errors.py in https://github.com/david-lev/pywa). The message
whatsagent logs, stores on the outbox row and returns from the proactive API names the template and
what to change.
"""

from __future__ import annotations

from whatsagent.errors import SendError
from whatsagent.messages.outbound import TemplateOut

_PROBLEMS = {
    132000: "the number of parameters does not match the template's placeholders",
    132001: "the template does not exist in this language, or is not approved yet",
    132005: "the text with its parameters filled in is too long",
    132007: "the template's content breaks WhatsApp's content policy",
    132008: "a parameter's value is not valid for its type",
    132012: "a parameter's format is not what the template expects",
    132015: "the template is paused by Meta for low quality: edit it or use another",
    132016: "the template is disabled by Meta for low quality: use another",
    132068: "the template's Flow is blocked",
    132069: "the template's Flow is throttled (10 sends per hour)",
    63016: "the user's 24-hour window is closed and this is not an approved template",
    21656: "the ContentVariables are not valid for this Content template",
    63021: "WhatsApp rejected the template's content",
}

TEMPLATE_ERROR_CODES = frozenset(c for c in _PROBLEMS if c >= 132000)


def _given(template: TemplateOut) -> str:
    counts: list[str] = []
    if template.params:
        counts.append(f"{len(template.params)} body parameter(s)")
    for component in template.components:
        kind = str(component.get("type", "")).lower()
        params = component.get("parameters") or []
        counts.append(f"{len(params)} {kind} parameter(s)")
    return ", ".join(counts) or "no parameters"


def describe(template: TemplateOut, error: SendError) -> str:
    """``template 'order_update' (en_US) was refused: the number of parameters ... (sent 1 body
    parameter(s)); WhatsApp says: ... | code 132000``."""
    problem = _PROBLEMS.get(error.code or -1)
    what = f"template {template.name!r} ({template.language}) was refused"
    if problem is None:
        return f"{what}: {error}"
    if error.code == 132000:
        problem += f" (sent {_given(template)})"
    elif error.code == 132001:
        problem += f": check its name and that a {template.language} translation is approved"
    return f"{what}: {problem}; WhatsApp says: {error}"

"""Message templates the emulated business account has had approved.

Outside the 24-hour window only templates go through (reference §3.4). The emulator checks a template
send the way Meta does: an unknown name or language is 132001, a parameter count that does not match
the placeholders is 132000 (reference §3.2). Positional (`{{1}}`) and named (`{{first_name}}`)
placeholders are both supported.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from whatsagent.emulator.errors import GraphError, invalid

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_NAME = re.compile(r"^[a-z0-9_]{1,512}$")


@dataclass
class Template:
    """An approved template: what a user reads, with placeholders, and its quick-reply buttons."""

    name: str
    body: str
    language: str = "en_US"
    category: str = "UTILITY"
    header: str | None = None
    footer: str | None = None
    buttons: tuple[str, ...] = ()
    """Quick-reply button texts; a tap arrives as a `button` webhook."""
    status: str = "APPROVED"
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"template name {self.name!r}: use lowercase letters, digits and _ (Meta's rule)")
        if not self.id:
            self.id = str(10**15 + zlib.crc32(f"{self.name}:{self.language}".encode()))

    def placeholders(self, where: str) -> list[str]:
        text = self.body if where == "body" else (self.header or "")
        return _PLACEHOLDER.findall(text)

    def components(self) -> list[dict[str, Any]]:
        """The template's components as the template listing shows them."""
        comps: list[dict[str, Any]] = []
        if self.header is not None:
            comps.append({"type": "HEADER", "format": "TEXT", "text": self.header})
        comps.append({"type": "BODY", "text": self.body})
        if self.footer is not None:
            comps.append({"type": "FOOTER", "text": self.footer})
        if self.buttons:
            comps.append({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": b} for b in self.buttons]})
        return comps

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "components": self.components(),
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }


DEFAULT_TEMPLATES = (
    Template(
        name="hello_world",
        header="Hello World",
        body="Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp "
        "message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test "
        "with us.",
        footer="WhatsApp Business Platform sample message",
    ),
    Template(
        name="welcome_back",
        body="Hi {{1}}, it has been a while. Would you like to pick up where we left off?",
        buttons=("Yes, continue", "No, thanks"),
    ),
    Template(
        name="order_update",
        header="Order update",
        body="Hi {{1}}, your order {{2}} has shipped.",
        buttons=("Stop updates",),
    ),
    Template(
        name="reply_waiting",
        body="Hi {{first_name}}, you have a reply waiting. Tap below to read it.",
        buttons=("Show me",),
    ),
)


class Templates:
    """The templates of one business account, keyed by (name, language)."""

    def __init__(self, templates: Iterable[Template] = DEFAULT_TEMPLATES) -> None:
        self._by_key: dict[tuple[str, str], Template] = {}
        for template in templates:
            self.add(template)

    def add(self, template: Template) -> Template:
        self._by_key[(template.name, template.language)] = template
        return template

    def remove(self, name: str, language: str | None = None) -> None:
        for key in [k for k in self._by_key if k[0] == name and (language is None or k[1] == language)]:
            del self._by_key[key]

    def get(self, name: str, language: str) -> Template | None:
        return self._by_key.get((name, language))

    def __iter__(self) -> Iterator[Template]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def check(self, template: Any) -> tuple[Template, str]:
        """Validate the `template` object of a send; return the definition and the text a user reads."""
        if not isinstance(template, dict):
            raise invalid("Param template must be a JSON object")
        name = template.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("The parameter template['name'] is required.")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(code, str) or not code:
            raise invalid("The parameter template['language']['code'] is required.")
        found = self.get(name, code)
        if found is None or found.status != "APPROVED":
            raise GraphError(404, 132001, f"template name ({name}) does not exist in {code}")
        components = template.get("components") or []
        if not isinstance(components, list):
            raise invalid("Param template['components'] must be an array")
        given: dict[str, list[dict[str, Any]]] = {"header": [], "body": []}
        for comp in components:
            if not isinstance(comp, dict) or comp.get("type") not in ("header", "body", "button", "footer"):
                raise invalid("Param template['components'][]['type'] must be one of {HEADER, BODY, BUTTON}")
            params = comp.get("parameters") or []
            if not isinstance(params, list):
                raise invalid("Param template['components'][]['parameters'] must be an array")
            if comp["type"] in given:
                given[comp["type"]].extend(p for p in params if isinstance(p, dict) and p.get("type") == "text")
        values: dict[str, dict[str, str]] = {}
        for where in ("header", "body"):
            expected = found.placeholders(where)
            got = given[where]
            if len(got) != len(expected):
                raise GraphError(
                    400,
                    132000,
                    f"{where} ({len(got)}) does not match the expected number of params ({len(expected)})",
                )
            mapping: dict[str, str] = {}
            for i, (placeholder, param) in enumerate(zip(expected, got, strict=True), start=1):
                text = param.get("text")
                if not isinstance(text, str):
                    raise GraphError(400, 132012, f"Parameter {i} of {where} must carry a text value")
                key = param.get("parameter_name") or placeholder
                mapping[str(key)] = text
            values[where] = mapping
        rendered = _render(found.body, values["body"])
        return found, rendered

    def header_text(self, found: Template, template: dict[str, Any]) -> str | None:
        if found.header is None:
            return None
        params = [
            p
            for c in template.get("components") or []
            if c.get("type") == "header"
            for p in c.get("parameters") or []
            if p.get("type") == "text"
        ]
        mapping = {
            str(p.get("parameter_name") or ph): str(p.get("text"))
            for ph, p in zip(found.placeholders("header"), params, strict=False)
        }
        return _render(found.header, mapping)


def _render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

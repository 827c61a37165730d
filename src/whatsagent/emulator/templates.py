"""Message templates the emulated business account has had approved.

Outside the 24-hour window only templates go through (Cloud API docs, Templates: https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview).
The emulator checks a template
send the way Meta does: an unknown name or language is 132001, a parameter count that does not match
the placeholders is 132000 (pywa's error list, pywa/errors.py in https://github.com/david-lev/pywa).
Positional (`{{1}}`) and named (`{{first_name}}`)
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


@dataclass(frozen=True)
class TemplateButton:
    """A template button other than a plain quick reply: URL (its `url` may end in `{{1}}`, filled by
    the send's button parameter), PHONE_NUMBER, COPY_CODE, FLOW, CATALOG, MPM, VOICE_CALL."""

    type: str
    text: str
    url: str | None = None


def _button_json(button: str | TemplateButton) -> dict[str, Any]:
    if isinstance(button, str):
        return {"type": "QUICK_REPLY", "text": button}
    out: dict[str, Any] = {"type": button.type, "text": button.text}
    if button.url is not None:
        out["url"] = button.url
        if _PLACEHOLDER.search(button.url):
            out["example"] = [_PLACEHOLDER.sub("example", button.url)]
    return out


def _examples(where: str, placeholders: list[str]) -> dict[str, Any]:
    """The `example` a template listing carries for placeholders, as Meta requires at creation."""
    if not placeholders:
        return {}
    if all(p.isdigit() for p in placeholders):
        values = [f"example {p}" for p in placeholders]
        return {"example": {f"{where}_text": [values] if where == "body" else values}}
    named = [{"param_name": p, "example": f"example {p}"} for p in placeholders]
    return {"example": {f"{where}_text_named_params": named}}


@dataclass
class Template:
    """An approved template: what a user reads, with placeholders, and its quick-reply buttons."""

    name: str
    body: str
    language: str = "en_US"
    category: str = "UTILITY"
    header: str | None = None
    footer: str | None = None
    buttons: tuple[str | TemplateButton, ...] = ()
    """Buttons in order: a text is a quick-reply button (a tap arrives as a `button` webhook)."""
    header_format: str = "TEXT"
    """TEXT (the `header` text), or IMAGE, VIDEO, DOCUMENT, LOCATION: a header filled by a parameter."""
    status: str = "APPROVED"
    id: str = field(default="")

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"template name {self.name!r}: use lowercase letters, digits and _ (Meta's rule)")
        if not self.id:
            self.id = str(10**15 + zlib.crc32(f"{self.name}:{self.language}".encode()))

    def button_types(self) -> list[str]:
        return [b.type if isinstance(b, TemplateButton) else "QUICK_REPLY" for b in self.buttons]

    def placeholders(self, where: str) -> list[str]:
        text = self.body if where == "body" else (self.header or "")
        return _PLACEHOLDER.findall(text)

    def components(self) -> list[dict[str, Any]]:
        """The template's components as the template listing shows them."""
        comps: list[dict[str, Any]] = []
        if self.header is not None or self.header_format != "TEXT":
            header: dict[str, Any] = {"type": "HEADER", "format": self.header_format}
            if self.header is not None:
                header["text"] = self.header
                header.update(_examples("header", self.placeholders("header")))
            elif self.header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
                header["example"] = {"header_handle": ["https://scontent.whatsapp.net/v/example"]}
            comps.append(header)
        comps.append({"type": "BODY", "text": self.body, **_examples("body", self.placeholders("body"))})
        if self.footer is not None:
            comps.append({"type": "FOOTER", "text": self.footer})
        if self.buttons:
            comps.append({"type": "BUTTONS", "buttons": [_button_json(b) for b in self.buttons]})
        return comps

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "components": self.components(),
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": "NAMED"
            if any(not p.isdigit() for w in ("header", "body") for p in self.placeholders(w))
            else "POSITIONAL",
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
        """Validate the `template` object of a send; return the definition and the text a user reads.

        As Meta does: component and sub-type names in any case (`BODY` or `body`), body parameters of
        type text, currency or date_time (a user reads the fallback value), header parameters of any
        header type, button parameters only for a button the template has at that index, of that kind.
        """
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
        given: dict[str, list[str | None]] = {"header": [], "body": []}
        names: dict[str, list[str | None]] = {"header": [], "body": []}
        buttons_seen: set[int] = set()
        for i, comp in enumerate(components):
            kind = str(comp.get("type", "")).lower() if isinstance(comp, dict) else ""
            if kind not in _COMPONENT_TYPES:
                raise invalid(f"Param template['components'][{i}]['type'] must be one of {{HEADER, BODY, BUTTON}}")
            params = comp.get("parameters") or []
            if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
                raise invalid(f"Param template['components'][{i}]['parameters'] must be an array of objects")
            if kind in given:
                for j, param in enumerate(params):
                    given[kind].append(_param_value(found, kind, param, f"components[{i}]['parameters'][{j}]"))
                    names[kind].append(param.get("parameter_name"))
            elif kind == "button":
                buttons_seen.add(_check_button(found, comp, i, buttons_seen))
        media_params = sum(1 for v in given["header"] if v is None)
        if found.header_format != "TEXT" and media_params != 1:
            raise GraphError(400, 132000, f"header ({media_params}) does not match the expected number of params (1)")
        values: dict[str, dict[str, str]] = {}
        for where in ("header", "body"):
            expected = found.placeholders(where)
            got = [v for v in given[where] if v is not None]
            if len(got) != len(expected):
                raise GraphError(
                    400,
                    132000,
                    f"{where} ({len(got)}) does not match the expected number of params ({len(expected)})",
                )
            keys = [n for v, n in zip(given[where], names[where], strict=True) if v is not None]
            values[where] = {str(k or ph): v for ph, k, v in zip(expected, keys, got, strict=True)}
        rendered = _render(found.body, values["body"])
        return found, rendered

    def header_text(self, found: Template, template: dict[str, Any]) -> str | None:
        if found.header is None:
            return None
        params = [
            p
            for c in template.get("components") or []
            if str(c.get("type", "")).lower() == "header"
            for p in c.get("parameters") or []
            if p.get("type") in _TEXT_PARAMS
        ]
        mapping = {
            str(p.get("parameter_name") or ph): _text_of(p) or ""
            for ph, p in zip(found.placeholders("header"), params, strict=False)
        }
        return _render(found.header, mapping)


_COMPONENT_TYPES = frozenset({"header", "body", "footer", "button", "carousel", "limited_time_offer"})
_TEXT_PARAMS = frozenset({"text", "currency", "date_time"})
_HEADER_MEDIA = frozenset({"image", "video", "document", "location", "product"})
_SUBTYPES = {
    "quick_reply": "QUICK_REPLY",
    "url": "URL",
    "copy_code": "COPY_CODE",
    "flow": "FLOW",
    "catalog": "CATALOG",
    "mpm": "MPM",
    "voice_call": "VOICE_CALL",
}


def _text_of(param: dict[str, Any]) -> str | None:
    """What a user reads for a text, currency or date_time parameter (the fallback value)."""
    kind = param.get("type")
    if kind == "text":
        text = param.get("text")
        return text if isinstance(text, str) else None
    inner = param.get(str(kind))
    value = inner.get("fallback_value") if isinstance(inner, dict) else None
    return value if isinstance(value, str) else None


def _param_value(found: Template, where: str, param: dict[str, Any], path: str) -> str | None:
    """The text a header or body parameter fills in; None for a header's media parameter."""
    kind = param.get("type")
    if kind in _TEXT_PARAMS:
        text = _text_of(param)
        if text is None:
            field_name = "text" if kind == "text" else f"{kind}']['fallback_value"
            raise GraphError(400, 131008, f"The parameter {path}['{field_name}'] is required.")
        if kind == "currency":
            currency = param["currency"]
            if not isinstance(currency.get("code"), str) or not isinstance(currency.get("amount_1000"), int):
                raise GraphError(400, 131008, f"The parameter {path}['currency'] needs code and amount_1000.")
        return text
    if where == "header" and kind in _HEADER_MEDIA:
        if found.header_format != str(kind).upper():
            raise GraphError(
                400,
                132012,
                f"Parameter format does not match format in the created template: header is {found.header_format}",
            )
        media = param.get(str(kind))
        if not isinstance(media, dict) or not media:
            raise GraphError(400, 131008, f"The parameter {path}['{kind}'] is required.")
        if kind in ("image", "video", "document") and not (media.get("id") or media.get("link")):
            raise GraphError(400, 131008, f"The parameter {path}['{kind}'] needs an id or a link.")
        return None
    allowed = sorted(_TEXT_PARAMS | (_HEADER_MEDIA if where == "header" else frozenset()))
    raise invalid(f"Param {path}['type'] must be one of {{{', '.join(allowed)}}} in the {where}")


def _check_button(found: Template, comp: dict[str, Any], i: int, seen: set[int]) -> int:
    """Check a button component against the template's buttons; return its index."""
    sub_type = str(comp.get("sub_type", "")).lower()
    if sub_type not in _SUBTYPES:
        raise invalid(f"Param template['components'][{i}]['sub_type'] must be one of {{{', '.join(_SUBTYPES)}}}")
    raw_index = comp.get("index")
    if isinstance(raw_index, bool) or not (
        isinstance(raw_index, int) or (isinstance(raw_index, str) and raw_index.isdigit())
    ):
        raise GraphError(400, 131008, f"The parameter template['components'][{i}]['index'] is required.")
    index = int(raw_index)
    if index in seen:
        raise invalid(f"Param template['components'][{i}]['index']: button {index} is given twice")
    kinds = found.button_types()
    if index >= len(kinds):
        raise GraphError(
            400, 131009, f"Button at index {index} does not exist: the template has {len(kinds)} button(s)"
        )
    if kinds[index] != _SUBTYPES[sub_type]:
        raise GraphError(400, 131009, f"Button at index {index} is of type {kinds[index]}, not {_SUBTYPES[sub_type]}")
    params = comp.get("parameters") or []
    want = {"quick_reply": "payload", "url": "text", "copy_code": "coupon_code", "flow": "action"}.get(sub_type)
    if want is not None:
        if len(params) != 1 or params[0].get("type") != want or params[0].get(want) in (None, ""):
            raise GraphError(400, 131008, f"Button at index {index} ({sub_type}) takes one parameter of type {want}")
    return index


def _render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

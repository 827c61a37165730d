"""Errors the emulated Graph API answers, in Meta's shape, and errors the emulator raises to its user.

Titles follow Meta's error-code page as mirrored by pywa and third parties (pywa's error list, pywa/errors.py in https://github.com/david-lev/pywa;
Kaleyra's copy: https://developers.kaleyra.io/docs/cloud-api-error-codes). The same
codes appear in three places: a synchronous HTTP error body, `statuses[].errors` of a failed status
webhook, and value-level `errors` (Cloud API docs, Errors webhook: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/errors).
"""

from __future__ import annotations

from typing import Any

from whatsagent.emulator.ids import fbtrace_id

TITLES: dict[int, str] = {
    0: "AuthException",
    1: "API Unknown",
    2: "API Service",
    4: "Application request limit reached",
    100: "Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    130429: "Rate limit hit",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131021: "Recipient cannot be sender",
    131026: "Message undeliverable",
    131047: "Re-engagement message",
    131051: "Message type unknown",
    131052: "Media download error",
    131053: "Media upload error",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132012: "Parameter format mismatch",
}

DETAILS: dict[int, str] = {
    130429: "Cloud API message throughput has been reached.",
    131000: "Something went wrong. Please try again later.",
    131016: "A service is temporarily unavailable. Please try again later.",
    131047: "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number.",
    131056: "Too many messages sent from the sender phone number to the same recipient phone number "
    "in a short period of time.",
}

HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


def title(code: int) -> str:
    return TITLES.get(code, "Something went wrong")


class GraphError(Exception):
    """A refusal by the Graph API: an HTTP status and Meta's error body."""

    def __init__(
        self,
        http_status: int,
        code: int,
        details: str | None = None,
        *,
        message: str | None = None,
        type_: str = "OAuthException",
        subcode: int | None = None,
        whatsapp: bool = True,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.details = details if details is not None else DETAILS.get(code, "")
        self.message = message or f"(#{code}) {title(code)}"
        self.type = type_
        self.subcode = subcode
        self.whatsapp = whatsapp
        super().__init__(f"HTTP {http_status} code {code}: {self.message} {self.details}".strip())

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.whatsapp:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


def invalid(details: str, code: int = 100) -> GraphError:
    """A malformed send body: Meta answers 400 with code 100 (or 131008/131009) and the reason."""
    return GraphError(400, code, details)


def bad_token() -> GraphError:
    return GraphError(401, 190, whatsapp=False)


def unknown_object(object_id: str) -> GraphError:
    return GraphError(
        400,
        100,
        message=(
            f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be loaded due "
            "to missing permissions, or does not support this operation. Please read the Graph API "
            "documentation at https://developers.facebook.com/docs/graph-api"
        ),
        type_="GraphMethodException",
        subcode=33,
        whatsapp=False,
    )


def status_error(code: int, details: str | None = None) -> dict[str, Any]:
    """The error object of a failed status webhook (Cloud API docs, Status webhooks:
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status)."""
    return {
        "code": code,
        "title": title(code),
        "message": title(code),
        "error_data": {"details": details if details is not None else DETAILS.get(code, title(code))},
        "href": HREF,
    }


class EmulatorError(Exception):
    """The emulator was used in a way that cannot work; the message says what to change."""

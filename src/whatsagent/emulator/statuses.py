"""Status webhooks: what became of each message the bot sent (Cloud API docs, Status webhooks:
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status).

A message goes sent → delivered → read (one tick, two ticks, blue ticks), or straight to failed.
Reactions only ever get `sent`. `pricing` rides on `sent` and on `delivered`; `conversation` is omitted,
as from v24.0 on. What the emulator posts is a `StatusPolicy`: how far to go, how fast, how reliably.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from whatsagent.emulator.state import OutboundRecord
from whatsagent.emulator.webhooks import timestamp

Stage = Literal["sent", "delivered", "read"]
STAGES: tuple[Stage, ...] = ("sent", "delivered", "read")


@dataclass
class StatusPolicy:
    """How the emulator reports delivery of the bot's messages.

    `until`: the last stage posted (None: no success statuses at all). `delay`: seconds before each
    stage. `drop`: share of status webhooks never posted. `out_of_order`: post the stages of a message
    newest first. `failures`: post `failed` statuses (131047 and friends) even when `until` is None,
    since they are the only way a bot learns of an asynchronous failure.
    """

    until: Stage | None = "read"
    delay: float = 0.02
    drop: float = 0.0
    out_of_order: bool = False
    failures: bool = True
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    def stages(self, record: OutboundRecord) -> list[Stage]:
        if self.until is None:
            return []
        last = 1 if record.type == "reaction" else STAGES.index(self.until) + 1
        return list(STAGES[: min(last, STAGES.index(self.until) + 1)])

    def dropped(self) -> bool:
        return self.drop > 0 and self._rng.random() < self.drop

    @classmethod
    def coerce(cls, value: StatusPolicy | bool | str | None) -> StatusPolicy:
        """`True` → the full sent/delivered/read sequence; `False`/`None`/"off" → none (failures
        still reported); "sent"/"delivered"/"read" → up to that stage."""
        if isinstance(value, StatusPolicy):
            return value
        if value is True:
            return cls()
        if value is False or value is None or value == "off":
            return cls(until=None)
        if value in STAGES:
            return cls(until=value)  # type: ignore[arg-type]
        raise ValueError(f"statuses must be a bool, 'off', one of {STAGES} or a StatusPolicy, not {value!r}")


def status_item(
    record: OutboundRecord,
    status: str,
    *,
    recipient_wa_id: str | None,
    recipient_user_id: str | None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": record.message_id, "status": status, "timestamp": timestamp()}
    if recipient_wa_id:
        item["recipient_id"] = recipient_wa_id
    if recipient_user_id:
        item["recipient_user_id"] = recipient_user_id
    if record.callback_data is not None:
        item["biz_opaque_callback_data"] = record.callback_data
    if status in ("sent", "delivered"):
        category = "utility" if record.type == "template" else "service"
        item["pricing"] = {
            "billable": record.type == "template",
            "pricing_model": "PMP",
            "type": "regular" if record.type == "template" else "free_customer_service",
            "category": category,
        }
    if errors:
        item["errors"] = errors
    return item

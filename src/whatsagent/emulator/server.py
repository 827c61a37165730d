"""The emulator itself: a local WhatsApp (Meta's Cloud API side) that a bot talks to.

It serves the Graph API endpoints a bot calls (`graph.py`), posts the bot signed webhooks for what
simulated users do (`users.py`, `webhooks.py`) and for what became of the bot's messages
(`statuses.py`), and injects faults on request (`faults.py`). One asyncio loop, no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from whatsagent.emulator import graph, ids, security, twilio
from whatsagent.emulator.errors import EmulatorError, GraphError, status_error
from whatsagent.emulator.faults import Faults
from whatsagent.emulator.live import Hub
from whatsagent.emulator.media import URL_TTL, MediaStore, fetch_link, fits, link_host_kind
from whatsagent.emulator.state import Delivery, InboundRecord, OutboundRecord, RequestRecord
from whatsagent.emulator.statuses import StatusPolicy, status_item
from whatsagent.emulator.templates import DEFAULT_TEMPLATES, Template, Templates
from whatsagent.emulator.twilio import TwilioAccount
from whatsagent.emulator.users import SimulatedUser
from whatsagent.emulator.validation import MEDIA_TYPES, Send
from whatsagent.emulator.webhooks import WebhookPoster, encode, envelope, timestamp

log = logging.getLogger(__name__)

_BSUID = re.compile(r"^[A-Z]{2}\.(ENT\.)?[0-9A-Za-z]{1,128}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{3,30}$")
FREE_FORM_OUTSIDE_WINDOW = 131047


class Emulator:
    """A local stand-in for WhatsApp's Cloud API. See the package docstring for a walk-through."""

    def __init__(
        self,
        phone_number_id: str = "100200300",
        access_token: str = "test-token",
        app_secret: str = "test-secret",
        webhook_url: str | None = None,
        display_phone_number: str = "15550001111",
        api_version: str = "v25.0",
        *,
        waba_id: str = "102030405060708",
        verified_name: str = "whatsagent emulator",
        templates: Iterable[Template] = DEFAULT_TEMPLATES,
        statuses: StatusPolicy | bool | str = False,
        enforce_window: bool = True,
        webhook_retries: int = 5,
        webhook_retry_delay: float = 0.5,
        record_requests: bool = True,
        media_url_ttl: float = URL_TTL,
        page: bool = True,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        self.app_secret = app_secret
        self.webhook_url = webhook_url
        self.console_url: str | None = None
        """The bot's operator console, linked from the chat page (the demo sets it)."""
        self.display_phone_number = display_phone_number
        self.api_version = api_version
        self.waba_id = waba_id
        self.verified_name = verified_name
        self.enforce_window = enforce_window
        self.webhook_retries = webhook_retries
        self.webhook_retry_delay = webhook_retry_delay
        self.record_requests = record_requests
        self.faults = Faults()
        self.media = MediaStore(media_url_ttl)
        self.templates = Templates(templates)
        self.hub = Hub()
        self.requests: list[RequestRecord] = []
        """Every request the bot made, in arrival order (clear it freely)."""
        self.inbound: dict[str, InboundRecord] = {}
        """Every message users sent, by wamid."""
        self.outbound: dict[str, OutboundRecord] = {}
        """Every message of the bot's that was accepted, by wamid."""
        self._statuses = StatusPolicy.coerce(statuses)
        self._users: dict[str, SimulatedUser] = {}
        self._by_user_id: dict[str, SimulatedUser] = {}
        self._poster = WebhookPoster(app_secret)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._held: list[tuple[bytes, list[InboundRecord], asyncio.Future[tuple[int, str]]]] = []
        self._hold_timer: asyncio.TimerHandle | None = None
        self._runner: web.AppRunner | None = None
        self._page = page
        self.bsuids = True
        """Users get a business-scoped user id, carried in webhooks, as on WhatsApp since April 2026."""
        self.fetch_remote_links = False
        """Media the bot sends by `link` are fetched (as Meta does: 131053 when that fails) from
        loopback hosts; links to reserved names (`.invalid`, `.test`, ...) fail at once; links to other
        hosts are trusted without a fetch unless this is True (tests never call out)."""
        self.twilio_account: TwilioAccount | None = None
        """Set by `twilio()`: the emulator then speaks Twilio's wire format to the bot."""
        self.base_url = ""
        self.app = self._build_app()

    # -- lifecycle ----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        # Documents may be 100 MB, multipart overhead on top (Cloud API docs, Media:
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media).
        app = web.Application(client_max_size=110 * 1024 * 1024, middlewares=[security.middleware])
        graph.GraphAPI(self).register(app)
        twilio.register(app, self)
        if self._page:
            from whatsagent.emulator import chat

            chat.ChatPage(self).register(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Emulator:
        """Serve on `host:port` (0 picks a free port); `base_url` is then the bot's API base URL."""
        if self._runner is not None:
            raise EmulatorError("the emulator is already started")
        self._poster.app_secret = self.app_secret
        await self._poster.open()
        security.bind(self.app, host)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        bound = self._runner.addresses[0]
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.base_url = f"http://{shown}:{bound[1]}"
        return self

    async def stop(self) -> None:
        self.hub.close()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._poster.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait for background work (status webhooks, webhook retries, held deliveries) to finish."""
        deadline = time.monotonic() + timeout
        while self._tasks or self._held:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self._tasks)} background deliveries still running after {timeout:g}s")
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=left)
            else:
                await asyncio.sleep(0.01)

    @property
    def graph_url(self) -> str:
        """`{base_url}/{api_version}`: where a bot's Graph API client points."""
        return f"{self.base_url}/{self.api_version}"

    # -- configuration ------------------------------------------------------------------------------

    def twilio(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str | None = None,
    ) -> TwilioAccount:
        """Speak Twilio's WhatsApp wire format to the bot from now on (see `whatsagent.emulator.twilio`):
        users' messages go to `webhook_url` as signed Twilio forms, and the bot sends through the
        Messages API at `base_url`. Returns the emulated account (SID, Auth Token, sender, Content SIDs)."""
        if self.twilio_account is None or account_sid or auth_token or from_number:
            options = {"account_sid": account_sid, "auth_token": auth_token, "from_number": from_number}
            self.twilio_account = TwilioAccount(self, **{k: v for k, v in options.items() if v})
        return self.twilio_account

    @property
    def statuses(self) -> StatusPolicy:
        """How status webhooks are posted; assign True/False, "sent"/"delivered"/"read" or a StatusPolicy."""
        return self._statuses

    @statuses.setter
    def statuses(self, value: StatusPolicy | bool | str) -> None:
        self._statuses = StatusPolicy.coerce(value)

    def user(
        self,
        wa_id: str | None = None,
        name: str | None = None,
        *,
        user_id: str | None = None,
        username: str | None = None,
        withhold_number: bool | None = None,
    ) -> SimulatedUser:
        """The simulated user with this wa_id (phone digits) and/or BSUID, created on first use.

        As on WhatsApp since April 2026, every user has a business-scoped user id (BSUID): a user
        created by number gets a stable one (unless `Emulator.bsuids` is False, for pre-2026
        behaviour). A user may have a `username`; a username-only user has no number at all
        (`emu.user(username="ana")` or `emu.user(user_id="US.123", username="ana")`), and a user with
        both may have the number withheld from webhooks (`withhold_number=True`), as Meta does for
        users with a username and no recent contact."""
        if wa_id is not None:
            wa_id = re.sub(r"[\s().-]", "", wa_id).lstrip("+")
            if not wa_id.isdigit():
                raise ValueError(f"wa_id must be digits (a phone number without '+'), not {wa_id!r}")
        if user_id is not None and not _BSUID.match(user_id):
            raise ValueError(f"user_id must be a BSUID such as 'US.1234567890', not {user_id!r}")
        found = (self._users.get(wa_id) if wa_id else None) or (self._by_user_id.get(user_id) if user_id else None)
        if found is None and username is not None:
            found = next((u for u in self._users.values() if u.username == username), None)
        if found is not None:
            if name is not None:
                found.name = name
            if wa_id and found.wa_id is None:  # a username-only user whose number WhatsApp now shares
                found.wa_id = wa_id
                self._users[wa_id] = found
            if user_id and found.user_id != user_id:
                self._by_user_id.pop(found.user_id or "", None)
                found.user_id = user_id
                self._by_user_id[user_id] = found
            if username is not None:
                found.username = username
            if withhold_number is not None:
                found.number_withheld = withhold_number
            return found
        if user_id is None and self.bsuids:
            if wa_id:
                user_id = ids.bsuid_for(wa_id, self.waba_id)
            elif username is not None:
                user_id = ids.bsuid_for("@" + username, self.waba_id)
        user = SimulatedUser(self, wa_id, user_id, name)
        user.username = username
        user.number_withheld = bool(withhold_number)
        self._users[user.key] = user
        if user_id:
            self._by_user_id[user_id] = user
        self.hub.publish({"event": "user", "user": user.to_json()})
        return user

    @property
    def users(self) -> list[SimulatedUser]:
        return list(self._users.values())

    def find_user(self, key: str) -> SimulatedUser | None:
        return self._users.get(key) or self._by_user_id.get(key)

    def close_window(self, user: SimulatedUser | str, *, synchronous: bool = False) -> None:
        """End the user's 24-hour window: free-form sends are accepted and then fail with 131047 in a
        status webhook (as Meta does), or are refused at once with `synchronous=True`. Templates still
        go through. The user's next message opens a new window."""
        target = self._resolve(user)
        target.window_closed = True
        target.window_sync_error = synchronous
        self.hub.publish({"event": "user", "user": target.to_json()})

    def open_window(self, user: SimulatedUser | str) -> None:
        target = self._resolve(user)
        target.window_closed = False
        target.last_message_at = time.time()
        self.hub.publish({"event": "user", "user": target.to_json()})

    def _publish_reaction(self, user: SimulatedUser, message_id: str, emoji: str | None) -> None:
        if self.hub.active:
            self.hub.publish({"event": "reaction", "user": user.key, "id": message_id, "emoji": emoji})

    def _resolve(self, user: SimulatedUser | str) -> SimulatedUser:
        if isinstance(user, SimulatedUser):
            return user
        found = self.find_user(user)
        if found is None:
            raise LookupError(f"no simulated user {user!r}")
        return found

    # -- webhooks to the bot ------------------------------------------------------------------------

    def _contact(self, user: SimulatedUser) -> dict[str, Any]:
        """The `contacts[]` item Meta sends for a user (reference: usernames and BSUIDs, 2026)."""
        profile: dict[str, Any] = {"name": user.name or ""}
        if user.username:
            profile["username"] = user.username
        contact: dict[str, Any] = {"profile": profile}
        if user.shown_wa_id:
            contact["wa_id"] = user.shown_wa_id
        if user.user_id:
            contact["user_id"] = user.user_id
        return contact

    def _envelope(self, **parts: Any) -> dict[str, Any]:
        return envelope(self.waba_id, self.phone_number_id, self.display_phone_number, **parts)

    async def _user_message(
        self,
        user: SimulatedUser,
        type: str,
        payload: Any,
        *,
        context: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> Delivery:
        if not self.webhook_url:
            raise EmulatorError("emu.webhook_url is not set: point it at the bot's webhook endpoint first")
        message: dict[str, Any] = {}
        if context:
            message["context"] = context
        if user.shown_wa_id:
            message["from"] = user.shown_wa_id
        if user.user_id:
            message["from_user_id"] = user.user_id
        wamid = ids.inbound_wamid(user.wa_id or user.key)
        message["id"] = wamid
        message["timestamp"] = timestamp()
        if errors:
            message["errors"] = errors
        message[type] = payload
        message["type"] = type
        contacts = None if type == "system" else [self._contact(user)]
        raw = encode(self._envelope(contacts=contacts, messages=[message]))
        record = InboundRecord(wamid, user.key, message, raw)
        self.inbound[wamid] = record
        user.sent.append(record)
        reopened = not user.window_open
        user.last_message_at = time.time()
        user.window_closed = False
        if reopened and self.hub.active:
            self.hub.publish({"event": "user", "user": user.to_json()})
        if type == "reaction" and payload.get("message_id") in self.outbound:
            target = self.outbound[payload["message_id"]]
            target.reaction = payload.get("emoji") or None
            self._publish_reaction(user, target.message_id, target.reaction)
        if self.hub.active:
            self.hub.publish({"event": "message", "user": user.key, "message": record.to_json()})
        status, text = await self._deliver(raw, [record])
        return Delivery(wamid, status, text)

    async def _deliver(self, raw: bytes, records: list[InboundRecord]) -> tuple[int, str]:
        faults = self.faults
        if faults.reorder_window:
            future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
            self._held.append((raw, records, future))
            if len(self._held) >= faults.reorder_window:
                self._flush_held()
            elif self._hold_timer is None:
                self._hold_timer = asyncio.get_running_loop().call_later(faults.reorder_hold, self._flush_held)
            return await future
        return await self._post_messages(raw, records)

    def _flush_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        held, self._held = self._held, []

        async def newest_first() -> None:
            for raw, records, future in reversed(held):
                result = await self._post_messages(raw, records)
                if not future.done():
                    future.set_result(result)

        self._spawn(newest_first())

    async def _post_messages(self, raw: bytes, records: list[InboundRecord]) -> tuple[int, str]:
        if self.twilio_account is not None:
            return await self.twilio_account.post_messages(records)
        url = self._require_url()
        if self.faults.duplicate():
            first, second = await asyncio.gather(self._poster.post(url, raw), self._poster.post(url, raw))
            for record in records:
                record.deliveries.extend((first[0], second[0]))
            status, text = first if first[0] == 200 else second
        else:
            status, text = await self._poster.post(url, raw)
            for record in records:
                record.deliveries.append(status)
        if status != 200 and self.webhook_retries > 0:
            self._spawn(self._retry(raw, records))
        if self.hub.active:
            for record in records:
                self.hub.publish({"event": "delivery", "id": record.message_id, "deliveries": record.deliveries})
        return status, text

    async def _retry(self, raw: bytes, records: list[InboundRecord]) -> None:
        """Meta retries a webhook that was not answered 200, with backoff (Cloud API docs, Webhooks:
        https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview)."""
        for attempt in range(self.webhook_retries):
            await asyncio.sleep(self.webhook_retry_delay * 2**attempt)
            if not self.webhook_url:
                return
            status, _ = await self._poster.post(self.webhook_url, raw)
            for record in records:
                record.deliveries.append(status)
            if self.hub.active:
                for record in records:
                    self.hub.publish({"event": "delivery", "id": record.message_id, "deliveries": record.deliveries})
            if status == 200:
                return

    def _require_url(self) -> str:
        if not self.webhook_url:
            raise EmulatorError("emu.webhook_url is not set: point it at the bot's webhook endpoint first")
        return self.webhook_url

    async def post_webhook(
        self,
        payload: Mapping[str, Any] | bytes | str,
        sign: bool | str = True,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """Post any body to the bot, signed (or not, or with the given header value), once, no retries.
        Messages in a dict payload are remembered, so the bot may mark them read or react to them."""
        if isinstance(payload, bytes):
            raw = payload
        elif isinstance(payload, str):
            raw = payload.encode()
        else:
            raw = encode(payload)
            self._remember(payload, raw)
        return await self._poster.post(self._require_url(), raw, sign=sign, headers=headers)

    def _remember(self, payload: Mapping[str, Any], raw: bytes) -> None:
        with contextlib.suppress(AttributeError, TypeError, KeyError):
            for entry in payload.get("entry", []):
                for change in entry.get("changes", []):
                    value = change.get("value", {})
                    for message in value.get("messages", []):
                        wamid = message.get("id")
                        key = message.get("from") or message.get("from_user_id")
                        if wamid and key and wamid not in self.inbound:
                            user = self.find_user(key) or (
                                self.user(key) if str(key).isdigit() else self.user(user_id=key)
                            )
                            user.last_message_at = time.time()
                            self.inbound[wamid] = InboundRecord(wamid, user.key, message, raw)

    async def redeliver(self, message_id: str, *, batch_with: Sequence[str] = ()) -> Delivery:
        """Deliver a user message again: the byte-identical webhook, or (with `batch_with`) the same
        message re-batched in a new envelope together with other messages, placed last."""
        record = self.inbound.get(message_id)
        if record is None:
            raise LookupError(f"no inbound message {message_id!r} to redeliver")
        if not batch_with and record.raw is not None:
            raw = record.raw
            records = [record]
        else:
            records = [self.inbound[m] for m in batch_with if m in self.inbound and m != message_id] + [record]
            contacts: list[dict[str, Any]] = []
            seen: set[str] = set()
            for rec in records:
                user = self.find_user(rec.user)
                if user is not None and user.key not in seen and rec.type != "system":
                    seen.add(user.key)
                    contacts.append(self._contact(user))
            raw = encode(self._envelope(contacts=contacts, messages=[r.message for r in records]))
        status, text = await self._post_messages(raw, records)
        return Delivery(message_id, status, text)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("emulator background delivery failed", exc_info=task.exception())

    # -- sends from the bot -------------------------------------------------------------------------

    def _recipient(self, send: Send) -> tuple[SimulatedUser, dict[str, str]]:
        if send.recipient is not None:
            user = self._by_user_id.get(send.recipient) or self.user(user_id=send.recipient)
            contact = {"input": send.recipient, "user_id": send.recipient}
            if user.wa_id:
                contact["wa_id"] = user.wa_id
            return user, contact
        assert send.to is not None
        to = send.to.strip()
        if _BSUID.match(to):
            user = self._by_user_id.get(to) or self.user(user_id=to)
            return user, {"input": to, "user_id": to}
        if not _PHONE.match(to):
            raise GraphError(400, 100, f"Param to must be a phone number or a business-scoped user id, not {to!r}")
        digits = re.sub(r"\D", "", to)
        if digits == re.sub(r"\D", "", self.display_phone_number):
            raise GraphError(400, 131021, "Recipient phone number cannot be the same as the sender phone number")
        user = self._users.get(digits) or self.user(digits)
        return user, {"input": send.to, "wa_id": user.wa_id or digits}

    def accept(self, send: Send) -> dict[str, Any]:
        """Accept a validated send: record it, schedule its status webhooks, return Meta's response."""
        user, contact = self._recipient(send)
        failure: int | None = None
        if self.enforce_window and send.type != "template" and not user.window_open:
            if user.window_sync_error:
                raise GraphError(400, FREE_FORM_OUTSIDE_WINDOW)
            failure = FREE_FORM_OUTSIDE_WINDOW
        body = send.body
        if send.type in MEDIA_TYPES and "id" in body[send.type]:
            item = self.media.get(body[send.type]["id"])
            if item is None or not fits(send.type, item.mime_type):
                failure = failure or 131053
        to_fetch: list[tuple[str, str]] = []
        for kind, link in _media_links(send):
            where = link_host_kind(link)
            if where == "unreachable":
                failure = failure or 131053
            elif where == "loopback" or self.fetch_remote_links:
                to_fetch.append((kind, link))
        reaction_target = None
        if send.type == "reaction":
            reaction_target = self.inbound.get(body["reaction"]["message_id"])
            if reaction_target is None:
                failure = failure or 131009
        wamid = ids.outbound_wamid(user.wa_id or user.key)
        record = OutboundRecord(wamid, user.key, send.type, body, rendered=send.rendered)
        if send.template is not None:
            record.template = send.template.to_json()
        self.outbound[wamid] = record
        user._add_reply(record)
        if to_fetch and failure is None:
            self._spawn(self._fetch_then_statuses(record, user, to_fetch))
        else:
            self._schedule_statuses(record, user, failure)
        if reaction_target is not None and failure is None:
            reaction_target.reaction = body["reaction"].get("emoji") or None
            self._publish_reaction(user, reaction_target.message_id, reaction_target.reaction)
        if self.hub.active:
            self.hub.publish({"event": "message", "user": user.key, "message": record.to_json()})
        message: dict[str, Any] = {"id": wamid}
        if send.type == "template":
            message["message_status"] = "accepted"
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}

    def mark_read(self, message_id: str, typing: bool) -> None:
        record = self.inbound.get(message_id)
        if record is None:
            raise GraphError(400, 100, f"Message with id {message_id} was not found or is not from a user")
        user = self.find_user(record.user)
        record.read = True
        if user is not None:
            user.read.append(message_id)
            if typing:
                user.typing.append(message_id)
        if self.hub.active:
            self.hub.publish({"event": "read", "user": record.user, "id": message_id, "typing": typing})

    async def _fetch_then_statuses(
        self, record: OutboundRecord, user: SimulatedUser, links: list[tuple[str, str]]
    ) -> None:
        """Meta fetches a medium sent by link before delivering it; one it cannot fetch fails (131053)."""
        session = await self._poster.session()
        for kind, link in links:
            problem = await fetch_link(session, link, kind)
            if problem is not None:
                self._schedule_statuses(record, user, 131053, problem)
                return
        self._schedule_statuses(record, user, None)

    def _schedule_statuses(
        self, record: OutboundRecord, user: SimulatedUser, failure: int | None, details: str | None = None
    ) -> None:
        policy = self._statuses
        if failure is not None:
            record.status = "failed"
            record.errors = [status_error(failure, details)]
            if policy.failures:
                self._spawn(self._post_statuses(record, user, policy, ["failed"]))
            return
        stages: list[str] = list(policy.stages(record))
        if not stages:
            record.status = "sent"
            return
        self._spawn(self._post_statuses(record, user, policy, stages))

    async def _post_statuses(
        self,
        record: OutboundRecord,
        user: SimulatedUser,
        policy: StatusPolicy,
        stages: list[str],
    ) -> None:
        pending: list[bytes] = []
        for stage in stages:
            if policy.delay:
                await asyncio.sleep(policy.delay)
            if stage != "failed":
                record.advance(stage)  # type: ignore[arg-type]
            if self.hub.active:
                event: dict[str, Any] = {"event": "status", "user": user.key, "id": record.message_id}
                event["status"] = stage
                if stage == "failed":
                    event["errors"] = record.errors
                self.hub.publish(event)
            if policy.dropped() or self.faults.drop_status() or not self.webhook_url:
                continue
            if self.twilio_account is not None:
                await self.twilio_account.post_status(record, stage, user)
                continue
            item = status_item(
                record,
                stage,
                recipient_wa_id=user.shown_wa_id,
                recipient_user_id=user.user_id,
                errors=record.errors if stage == "failed" else None,
            )
            contacts = [self._contact(user)] if user.user_id else None
            raw = encode(self._envelope(contacts=contacts, statuses=[item]))
            if policy.out_of_order:
                pending.append(raw)
            else:
                await self._post_status(raw)
        for raw in reversed(pending):
            await self._post_status(raw)

    async def _post_status(self, raw: bytes) -> None:
        url = self.webhook_url
        if not url:
            return
        status, _ = await self._poster.post(url, raw)
        if status != 200 and self.webhook_retries > 0:
            for attempt in range(self.webhook_retries):
                await asyncio.sleep(self.webhook_retry_delay * 2**attempt)
                status, _ = await self._poster.post(url, raw)
                if status == 200:
                    return

    def record_request(self, method: str, path: str, json: Any) -> RequestRecord | None:
        if not self.record_requests:
            return None
        record = RequestRecord(method, path, json, time.time())
        self.requests.append(record)
        return record

    # -- snapshots for the chat page ----------------------------------------------------------------

    def conversation(self, user: SimulatedUser) -> list[dict[str, Any]]:
        """Both sides of a chat in time order, as JSON."""
        items = [r.to_json() for r in user.sent] + [r.to_json() for r in user.replies]
        items.sort(key=lambda m: m["time"])
        return items


def _media_links(send: Send) -> list[tuple[str, str]]:
    """(message type, link) of every medium a send carries by link: the medium itself, an
    interactive header, carousel cards' headers."""
    body = send.body
    if send.type in MEDIA_TYPES:
        link = body[send.type].get("link")
        return [(send.type, link)] if isinstance(link, str) else []
    if send.type != "interactive":
        return []
    inter = body["interactive"]
    headers = [inter.get("header")] + [c.get("header") for c in (inter.get("action") or {}).get("cards") or []]
    links = []
    for header in headers:
        if isinstance(header, dict) and header.get("type") in MEDIA_TYPES:
            link = (header.get(header["type"]) or {}).get("link")
            if isinstance(link, str):
                links.append((header["type"], link))
    return links


async def run_emulator(
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    webhook_url: str | None = "http://127.0.0.1:8000/whatsapp/webhook",
    app_secret: str = "emulator-app-secret",
    access_token: str = "emulator-token",
    phone_number_id: str = "100200300",
    display_phone_number: str = "15550001111",
    api_version: str = "v25.0",
    statuses: StatusPolicy | bool | str = True,
    started: asyncio.Future[Emulator] | None = None,
    twilio: bool = False,
) -> None:
    """Serve the emulator and its chat page until cancelled (the `whatsagent emulator` command).
    `twilio=True` speaks Twilio's wire format instead of the Cloud API's (webhooks as signed forms).

    Status webhooks are on, with a visible pace, so the page shows ticks turning blue. `started`, when
    given, receives the running emulator (for a demo that runs a bot next to it)."""
    if statuses is True:
        statuses = StatusPolicy(delay=0.4)
    emulator = Emulator(
        phone_number_id=phone_number_id,
        access_token=access_token,
        app_secret=app_secret,
        webhook_url=webhook_url,
        display_phone_number=display_phone_number,
        api_version=api_version,
        statuses=statuses,
    )
    await emulator.start(host, port)
    # Only the emulator's own defaults are printed: a real secret from the environment stays out of logs.
    shown_secret = repr(app_secret) if app_secret == "emulator-app-secret" else "(as configured)"
    shown_token = repr(access_token) if access_token == "emulator-token" else "(as configured)"
    log.info(
        "WhatsApp emulator: chat page %s/ ; point your bot's Graph API base URL at %s (token %s, phone "
        "number id %s, app secret %s); webhooks go to %s",
        emulator.base_url,
        emulator.base_url,
        shown_token,
        phone_number_id,
        shown_secret,
        webhook_url,
    )
    if twilio:
        account = emulator.twilio()
        log.info(
            "speaking Twilio's wire format: TWILIO_API_BASE_URL=%s TWILIO_ACCOUNT_SID=%s TWILIO_AUTH_TOKEN=%s "
            "TWILIO_FROM_NUMBER=%s",
            emulator.base_url,
            account.account_sid,
            account.auth_token,
            account.from_number,
        )
    if started is not None and not started.done():
        started.set_result(emulator)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()

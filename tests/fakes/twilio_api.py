"""A local stand-in for Twilio's WhatsApp APIs, for tests: an aiohttp server on loopback.

It records what the bot sends through the Messages API (form fields exactly as posted), answers like
Twilio (201 with a Message resource, or Twilio's error JSON), injects faults (429 with Retry-After, 500,
63016 outside the window, any code), serves inbound media behind basic auth with a redirect to a
credential-free "CDN" URL, records typing indicators, and plays Twilio's part towards the bot: it posts
signed inbound webhooks and signed status callbacks.

Its signing code is its own (`sign` below), written from Twilio's description, so a test that passes
proves the project's validator agrees with an independent implementation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token"
FROM_NUMBER = "whatsapp:+14155238886"
BODY_LIMIT = 1600


def sign(token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature as Twilio computes it: HMAC-SHA1 (key: the Auth Token) over the URL followed by
    each parameter name and value, names sorted, values of a repeated name sorted; base64."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        if value not in grouped.setdefault(name, []):
            grouped[name].append(value)
    payload = url
    for name in sorted(grouped):
        for value in sorted(grouped[name]):
            payload += f"{name}{value}"
    digest = hmac.new(token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class SentMessage:
    """One accepted POST to Messages.json."""

    sid: str
    form: list[tuple[str, str]]
    username: str
    fetched_media: list[tuple[int, str | None, bytes]] = field(default_factory=list)
    """What the fake got when it fetched each MediaUrl (only with `fetch_media=True`)."""

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.form if key == name), None)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]

    @property
    def to(self) -> str | None:
        return self.get("To")

    @property
    def body(self) -> str | None:
        return self.get("Body")

    @property
    def media_urls(self) -> list[str]:
        return self.all("MediaUrl")

    @property
    def content_sid(self) -> str | None:
        return self.get("ContentSid")

    @property
    def content_variables(self) -> dict[str, str] | None:
        raw = self.get("ContentVariables")
        return json.loads(raw) if raw is not None else None

    @property
    def status_callback(self) -> str | None:
        return self.get("StatusCallback")


@dataclass
class Fault:
    status: int
    code: int | None
    message: str
    retry_after: str | None = None


FAULTS = {
    "429": Fault(429, 20429, "Too Many Requests", retry_after="2"),
    "500": Fault(500, 20500, "Internal Server Error"),
    "503": Fault(503, 20503, "Service Unavailable"),
    "63016": Fault(
        400,
        63016,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
    "21617": Fault(400, 21617, "The concatenated message body exceeds the 1600 character limit"),
    "21211": Fault(400, 21211, "The 'To' number is not a valid phone number."),
    "20003": Fault(401, 20003, "Authenticate"),
}


class FakeTwilio:
    """``async with FakeTwilio() as twilio:`` then point the channel at ``twilio.base_url``."""

    def __init__(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        api_keys: Mapping[str, str] | None = None,
        auto_status: Iterable[str] = (),
        fetch_media: bool = False,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.credentials = {account_sid: auth_token, **(api_keys or {})}
        self.auto_status = tuple(auto_status)
        """Statuses to call back after each accepted send, in order (e.g. ``("sent", "delivered")``)."""
        self.fetch_media = fetch_media
        self.sends: list[SentMessage] = []
        self.refused: list[tuple[int, list[tuple[str, str]]]] = []
        self.typing: list[dict[str, str]] = []
        self.typing_status = 200
        self.callbacks: list[tuple[str, dict[str, str], int]] = []
        """(url, params, the bot's HTTP status) of every webhook and callback this fake posted."""
        self._faults: list[Fault] = []
        self._media: dict[str, tuple[bytes, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""
        self.cdn_url = ""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> FakeTwilio:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create_message)
        app.router.add_post("/v2/Indicators/Typing.json", self._typing)
        app.router.add_get("/2010-04-01/Accounts/{account}/Messages/{message}/Media/{media}", self._media_get)
        app.router.add_get("/cdn/{token}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        api = web.TCPSite(self._runner, "127.0.0.1", 0)
        await api.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        # Media redirect to another origin, as Twilio's do to short-lived storage URLs.
        cdn = web.TCPSite(self._runner, "127.0.0.1", 0)
        await cdn.start()
        self.cdn_url = f"http://127.0.0.1:{self._runner.addresses[1][1]}"
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeTwilio:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults and fixtures ------------------------------------------------------------------------

    def fail_next(self, fault: str | Fault, times: int = 1, *, retry_after: str | None = None) -> None:
        """Refuse the next `times` sends with a named fault ("429", "500", "63016", ...) or a Fault."""
        chosen = FAULTS[fault] if isinstance(fault, str) else fault
        if retry_after is not None:
            chosen = Fault(chosen.status, chosen.code, chosen.message, retry_after)
        self._faults.extend([chosen] * times)

    def host_media(self, data: bytes, content_type: str) -> str:
        """Keep an inbound medium; its MediaUrl, which needs basic auth and redirects to a CDN URL."""
        media_sid = new_sid("ME")
        self._media[media_sid] = (data, content_type)
        message = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages/{new_sid('MM')}"
        return f"{message}/Media/{media_sid}"

    def inbound(
        self,
        body: str = "",
        *,
        wa_id: str = "14155550100",
        name: str | None = "Ana",
        sid: str | None = None,
        to: str = FROM_NUMBER,
        media: Iterable[tuple[str, str]] = (),
        **extra: str,
    ) -> dict[str, str]:
        """The form Twilio posts for a WhatsApp message from `wa_id` (media: (url, content type) pairs)."""
        media = list(media)
        sid = sid or new_sid("MM" if media else "SM")
        form = {
            "SmsMessageSid": sid,
            "NumMedia": str(len(media)),
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "To": to,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": f"whatsapp:+{wa_id}",
            "WaId": wa_id,
            "ApiVersion": "2010-04-01",
        }
        if name is not None:
            form["ProfileName"] = name
        for index, (url, content_type) in enumerate(media):
            form[f"MediaUrl{index}"] = url
            form[f"MediaContentType{index}"] = content_type
        form.update(extra)
        return form

    # -- playing Twilio towards the bot ---------------------------------------------------------------

    async def post_inbound(
        self, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], *, token: str | None = None
    ) -> int:
        """POST a signed inbound webhook to the bot; the bot's HTTP status."""
        return await self._post_signed(url, params, token=token)

    async def post_status(
        self,
        sid: str,
        status: str,
        *,
        error_code: int | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> int:
        """POST a signed status callback for a sent message, to the StatusCallback it was sent with."""
        sent = next((s for s in self.sends if s.sid == sid), None)
        target = url or (sent.status_callback if sent else None)
        if not target:
            raise AssertionError(f"no StatusCallback known for {sid}")
        params = {
            "SmsSid": sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "ChannelToAddress": (sent.to or "").removeprefix("whatsapp:") if sent else "",
            "To": (sent.to or "") if sent else "",
            "ChannelPrefix": "whatsapp",
            "MessageSid": sid,
            "AccountSid": self.account_sid,
            "From": (sent.get("From") or "") if sent else FROM_NUMBER,
            "ApiVersion": "2010-04-01",
            "ChannelInstallSid": "XE" + "0" * 32,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return await self._post_signed(target, params, token=token)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll `predicate` until it holds (callbacks and media fetches run after the send answered)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    async def _post_signed(
        self, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]], *, token: str | None
    ) -> int:
        assert self._http is not None, "start the fake first"
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        headers = {"X-Twilio-Signature": sign(token or self.auth_token, url, pairs)}
        # Exactly the URL that was signed: yarl would otherwise normalise its escapes.
        async with self._http.post(URL(url, encoded=True), data=pairs, headers=headers) as response:
            await response.read()
            self.callbacks.append((url, dict(pairs), response.status))
            return response.status

    # -- the API ------------------------------------------------------------------------------------

    def _authenticated(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        expected = self.credentials.get(username)
        return username if expected is not None and hmac.compare_digest(expected, password) else None

    async def _create_message(self, request: web.Request) -> web.Response:
        username = self._authenticated(request)
        if username is None or request.match_info["account"] != self.account_sid:
            return _error(FAULTS["20003"])
        form = [(k, str(v)) for k, v in (await request.post()).items()]
        fields = dict(reversed(form))
        if self._faults:
            fault = self._faults.pop(0)
            self.refused.append((fault.status, form))
            return _error(fault)
        problem = _validate(fields)
        if problem:
            self.refused.append((problem.status, form))
            return _error(problem)
        sent = SentMessage(sid=new_sid("MM" if fields.get("MediaUrl") else "SM"), form=form, username=username)
        self.sends.append(sent)
        if self.fetch_media or self.auto_status:
            self._spawn(self._after_send(sent))
        return web.json_response(
            {
                "sid": sent.sid,
                "account_sid": self.account_sid,
                "to": fields.get("To"),
                "from": fields.get("From"),
                "body": fields.get("Body", ""),
                "status": "queued",
                "num_media": str(len(sent.media_urls)),
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sent.sid}.json",
            },
            status=201,
        )

    async def _after_send(self, sent: SentMessage) -> None:
        assert self._http is not None
        failed = False
        if self.fetch_media:
            for url in sent.media_urls:
                async with self._http.get(url) as response:
                    data = await response.read()
                    sent.fetched_media.append((response.status, response.headers.get("Content-Type"), data))
                    failed = failed or response.status != 200
        for status in self.auto_status:
            if sent.status_callback is None:
                break
            if failed:
                # Twilio could not fetch the medium: the message fails (63019, media download failed).
                await self.post_status(sent.sid, "failed", error_code=63019)
                break
            await self.post_status(sent.sid, status)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _typing(self, request: web.Request) -> web.Response:
        if self._authenticated(request) is None:
            return _error(FAULTS["20003"])
        self.typing.append({k: str(v) for k, v in (await request.post()).items()})
        if self.typing_status != 200:
            return web.json_response({"code": 20500, "message": "typing failed"}, status=self.typing_status)
        return web.json_response({"success": True})

    async def _media_get(self, request: web.Request) -> web.Response:
        if self._authenticated(request) is None:
            return _error(FAULTS["20003"])
        media_sid = request.match_info["media"]
        if media_sid not in self._media:
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        raise web.HTTPFound(f"{self.cdn_url}/cdn/{media_sid}")

    async def _cdn(self, request: web.Request) -> web.Response:
        # Like a pre-signed storage URL: it refuses requests that carry credentials of their own.
        if "Authorization" in request.headers:
            return web.Response(status=400, text="only one auth mechanism allowed")
        item = self._media.get(request.match_info["token"])
        if item is None:
            return web.Response(status=404)
        data, content_type = item
        return web.Response(body=data, content_type=content_type)


def _validate(fields: Mapping[str, str]) -> Fault | None:
    if not fields.get("To") or not fields.get("From"):
        return Fault(400, 21604, "A 'To' and a 'From' phone number are required.")
    if not fields.get("To", "").startswith("whatsapp:") or not fields["From"].startswith("whatsapp:"):
        return Fault(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
    if not (fields.get("Body") or fields.get("MediaUrl") or fields.get("ContentSid")):
        return Fault(400, 21602, "Message body is required.")
    if len(fields.get("Body", "")) > BODY_LIMIT:
        return FAULTS["21617"]
    if fields.get("ContentVariables"):
        try:
            variables = json.loads(fields["ContentVariables"])
        except ValueError:
            return Fault(400, 21656, "The ContentVariables Parameter is invalid.")
        if not isinstance(variables, dict):
            return Fault(400, 21656, "The ContentVariables Parameter is invalid.")
    return None


def _error(fault: Fault) -> web.Response:
    headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
    return web.json_response(
        {
            "code": fault.code,
            "message": fault.message,
            "more_info": f"https://www.twilio.com/docs/errors/{fault.code}",
            "status": fault.status,
        },
        status=fault.status,
        headers=headers,
    )

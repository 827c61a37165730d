"""pywa, the most used Python client of Meta's Cloud API (written by people who are not us), against
the emulator: every send and media method pywa has is answered as WhatsApp answers it (accepted, or
refused with Meta's code), and every webhook the emulator emits is parsed by pywa into the update type
pywa gives the real thing, with who sent it.

pywa's client is synchronous (httpx); it runs in a worker thread while the emulator serves on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from pywa import WhatsApp, handlers, types
from pywa.errors import WhatsAppError
from pywa.types import templates as T

from whatsagent.emulator import Emulator, SimulatedUser, StatusPolicy, Template, TemplateButton

SECRET = "pywa-secret"
TOKEN = "pywa-token"
PNID = "100200300"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"\x00" * 64
ANA = "15552223333"

TEMPLATES = (
    Template(name="hello_world", header="Hello World", body="Welcome!"),
    Template(name="welcome_back", body="Hi {{1}}, pick up where we left off?", buttons=("Yes", "No")),
    Template(name="order_update", header="Order {{1}}", body="Your total is {{1}}, due {{2}}.", buttons=("Stop",)),
    Template(name="reply_waiting", body="Hi {{first_name}}, a reply is waiting."),
    Template(
        name="track_order",
        body="Track order {{1}}.",
        buttons=(TemplateButton("URL", "Track", "https://shop.example.com/t/{{1}}"), "Stop"),
    ),
    Template(name="promo_photo", header_format="IMAGE", body="New in store."),
)


@dataclass
class World:
    emu: Emulator
    wa: WhatsApp
    ana: SimulatedUser
    last_user_message: str
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """Served on loopback at files_url/{name}: what a bot links to."""
    files_url: str = ""
    tmp: str = ""
    webhooks: list[tuple[bytes, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, fn: Callable[[WhatsApp], Any]) -> Any:
        return await asyncio.to_thread(fn, self.wa)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)


def pywa_client(emu: Emulator) -> WhatsApp:
    wa = WhatsApp(
        phone_id=PNID,
        token=TOKEN,
        app_secret=SECRET,
        waba_id=emu.waba_id,
        api_version=emu.api_version.removeprefix("v"),
        session=httpx.Client(timeout=30),
    )
    # pywa fixes graph.facebook.com as its session's base URL; point it at the emulator instead.
    wa.api._session.base_url = emu.graph_url
    return wa


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[World]:
    emu = Emulator(phone_number_id=PNID, access_token=TOKEN, app_secret=SECRET, templates=TEMPLATES)
    await emu.start()
    holder: dict[str, World] = {}

    async def webhook(request: web.Request) -> web.Response:
        world = holder["w"]
        world.webhooks.append((await request.read(), request.headers.get("X-Hub-Signature-256", "")))
        world.arrived.set()
        return web.Response(text="ok")

    async def serve_file(request: web.Request) -> web.Response:
        found = holder["w"].files.get(request.match_info["name"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[0], content_type=found[1])

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/files/{name}", serve_file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    emu.webhook_url = f"{base}/webhook"
    world = World(emu, pywa_client(emu), emu.user(ANA, "Ana"), "", files_url=f"{base}/files", tmp=str(tmp_path))
    holder["w"] = world
    world.last_user_message = (await world.ana.send_text("hi")).message_id
    try:
        yield world
    finally:
        world.wa.api._session.close()
        await emu.stop()
        await runner.cleanup()


# -- every send and media method pywa has ------------------------------------------------------------

Call = Callable[[WhatsApp, World], Any]
LINK = "https://cdn.example.com/a"

ACCEPTED: list[tuple[str, Call]] = [
    ("send_message text", lambda wa, w: wa.send_message(ANA, "hello", preview_url=True)),
    ("send_message reply", lambda wa, w: wa.send_message(ANA, "re", reply_to_message_id=w.last_user_message)),
    ("send_message tracker", lambda wa, w: wa.send_message(ANA, "t", tracker="order-42")),
    (
        "send_message buttons",
        lambda wa, w: wa.send_message(
            ANA, "pick", header="Head", footer="Foot", buttons=[types.Button("Yes", "y"), types.Button("No", "n")]
        ),
    ),
    (
        "send_message list",
        lambda wa, w: wa.send_message(
            ANA,
            "pick",
            buttons=types.SectionList(
                "Menu",
                [
                    types.Section("A", [types.SectionRow("Row", "r", "d")]),
                    types.Section("B", [types.SectionRow("R2", "r2")]),
                ],
            ),
        ),
    ),
    (
        "send_message cta_url",
        lambda wa, w: wa.send_message(ANA, "open", buttons=types.URLButton("Open", "https://e.com")),
    ),
    (
        "send_message flow",
        lambda wa, w: wa.send_message(
            ANA, "flow", buttons=types.FlowButton("Start", flow_id="123", flow_token="tok", flow_action_screen="ONE")
        ),
    ),
    ("send_message voice_call", lambda wa, w: wa.send_message(ANA, "call", buttons=types.VoiceCallButton("Call us"))),
    (
        "send_message call_permission_request",
        lambda wa, w: wa.send_message(ANA, "may we call?", buttons=types.CallPermissionRequestButton()),
    ),
    (
        "send_message request_contact_info",
        lambda wa, w: wa.send_message(ANA, "who?", buttons=types.ContactInfoRequestButton()),
    ),
    ("send_image link", lambda wa, w: wa.send_image(ANA, LINK + ".png", caption="c")),
    ("send_image bytes (upload)", lambda wa, w: wa.send_image(ANA, PNG, mime_type="image/png")),
    (
        "send_image buttons",
        lambda wa, w: wa.send_image(ANA, LINK + ".png", caption="c", buttons=[types.Button("Y", "y")]),
    ),
    (
        "send_image cta_url",
        lambda wa, w: wa.send_image(ANA, LINK + ".png", caption="c", buttons=types.URLButton("Open", "https://e.com")),
    ),
    (
        "send_video cta_url",
        lambda wa, w: wa.send_video(ANA, LINK + ".mp4", caption="c", buttons=types.URLButton("Open", "https://e.com")),
    ),
    (
        "send_document cta_url",
        lambda wa, w: wa.send_document(
            ANA, LINK + ".pdf", filename="a.pdf", caption="c", buttons=types.URLButton("Open", "https://e.com")
        ),
    ),
    ("send_video link", lambda wa, w: wa.send_video(ANA, LINK + ".mp4", caption="c")),
    ("send_document link", lambda wa, w: wa.send_document(ANA, LINK + ".pdf", filename="a.pdf", caption="c")),
    (
        "send_document bytes (upload)",
        lambda wa, w: wa.send_document(ANA, PDF, filename="a.pdf", mime_type="application/pdf"),
    ),
    ("send_audio link", lambda wa, w: wa.send_audio(ANA, LINK + ".mp3")),
    ("send_voice link", lambda wa, w: wa.send_voice(ANA, LINK + ".ogg")),
    ("send_sticker link", lambda wa, w: wa.send_sticker(ANA, LINK + ".webp")),
    ("send_reaction", lambda wa, w: wa.send_reaction(ANA, "👍", w.last_user_message)),
    ("remove_reaction", lambda wa, w: wa.remove_reaction(ANA, w.last_user_message)),
    ("send_location", lambda wa, w: wa.send_location(ANA, 32.1, 34.8, "Shop", "1 Main St")),
    ("request_location", lambda wa, w: wa.request_location(ANA, "Where are you?")),
    ("request_contact_info", lambda wa, w: wa.request_contact_info(ANA, "Share your details?")),
    (
        "send_contact",
        lambda wa, w: wa.send_contact(
            ANA,
            types.Contact(
                name=types.Contact.Name(formatted_name="Bo Li", first_name="Bo"),
                phones=[types.Contact.Phone(phone="+15550009999", type="CELL")],
            ),
        ),
    ),
    ("send_catalog", lambda wa, w: wa.send_catalog(ANA, "Our catalog", thumbnail_product_sku="s1")),
    ("send_product", lambda wa, w: wa.send_product(ANA, catalog_id="c1", sku="s1", body="This one")),
    (
        "send_products",
        lambda wa, w: wa.send_products(
            ANA, catalog_id="c1", product_sections=[types.ProductsSection("S", ["s1", "s2"])], title="T", body="B"
        ),
    ),
    (
        "send_carousel",
        lambda wa, w: wa.send_carousel(
            ANA,
            body="Pick one",
            cards=[
                types.ImageCarouselCard(
                    image=LINK + "1.png", body="One", buttons=types.URLButton("Buy", "https://e.com/1")
                ),
                types.ImageCarouselCard(image=LINK + "2.png", body="Two", buttons=[types.Button("Like", "like2")]),
            ],
        ),
    ),
    ("mark_message_as_read", lambda wa, w: wa.mark_message_as_read(w.last_user_message)),
    ("indicate_typing", lambda wa, w: wa.indicate_typing(w.last_user_message)),
    ("upload_media", lambda wa, w: wa.upload_media(PNG, mime_type="image/png")),
    ("send_template no parameters", lambda wa, w: wa.send_template(ANA, "hello_world", T.TemplateLanguage.ENGLISH_US)),
    (
        "send_template body text",
        lambda wa, w: wa.send_template(
            ANA, "welcome_back", T.TemplateLanguage.ENGLISH_US, params=[T.BodyText.params("Ana")]
        ),
    ),
    (
        "send_template quick replies",
        lambda wa, w: wa.send_template(
            ANA,
            "welcome_back",
            T.TemplateLanguage.ENGLISH_US,
            params=[
                T.BodyText.params("Ana"),
                T.QuickReplyButton.params(callback_data="yes", index=0),
                T.QuickReplyButton.params(callback_data="no", index=1),
            ],
        ),
    ),
    (
        "send_template currency and date_time",
        lambda wa, w: wa.send_template(
            ANA,
            "order_update",
            T.TemplateLanguage.ENGLISH_US,
            params=[
                T.HeaderText.params("#42"),
                T.BodyText.params(
                    T.Currency(fallback_value="$19.99", code="USD", amount_1000=19990),
                    T.DateTime(fallback_value="May 1, 2026"),
                ),
            ],
        ),
    ),
    (
        "send_template named",
        lambda wa, w: wa.send_template(
            ANA, "reply_waiting", T.TemplateLanguage.ENGLISH_US, params=[T.BodyText.params(first_name="Ana")]
        ),
    ),
    (
        "send_template url button",
        lambda wa, w: wa.send_template(
            ANA,
            "track_order",
            T.TemplateLanguage.ENGLISH_US,
            params=[T.BodyText.params("42"), T.URLButton.params(url_variable="42", index=0)],
        ),
    ),
    (
        "send_template image header",
        lambda wa, w: wa.send_template(
            ANA, "promo_photo", T.TemplateLanguage.ENGLISH_US, params=[T.HeaderImage.params(image=LINK + ".png")]
        ),
    ),
    ("get_media_url", lambda wa, w: wa.get_media_url(wa.upload_media(PNG, mime_type="image/png").id)),
    (
        "get_media_bytes",
        lambda wa, w: wa.get_media_bytes(wa.get_media_url(wa.upload_media(PNG, mime_type="image/png").id).url),
    ),
    (
        "download_media",
        lambda wa, w: wa.download_media(
            url=wa.get_media_url(wa.upload_media(PNG, mime_type="image/png").id).url, path=w.tmp, filename="a.png"
        ),
    ),
    ("delete_media", lambda wa, w: wa.delete_media(wa.upload_media(PNG, mime_type="image/png").id)),
    ("get_templates", lambda wa, w: list(wa.get_templates())),
    ("get_business_phone_number", lambda wa, w: wa.get_business_phone_number()),
]

REFUSED: list[tuple[str, Call, int]] = [
    (
        "template button index past the template's buttons",
        lambda wa, w: wa.send_template(
            ANA,
            "order_update",
            T.TemplateLanguage.ENGLISH_US,
            params=[
                T.HeaderText.params("#1"),
                T.BodyText.params("a", "b"),
                T.QuickReplyButton.params(callback_data="x", index=5),
            ],
        ),
        131009,
    ),
    (
        "template quick-reply parameter on a URL button",
        lambda wa, w: wa.send_template(
            ANA,
            "track_order",
            T.TemplateLanguage.ENGLISH_US,
            params=[T.BodyText.params("42"), T.QuickReplyButton.params(callback_data="x", index=0)],
        ),
        131009,
    ),
    (
        "template with too few body parameters",
        lambda wa, w: wa.send_template(
            ANA, "order_update", T.TemplateLanguage.ENGLISH_US, params=[T.BodyText.params("a")]
        ),
        132000,
    ),
    ("unknown template", lambda wa, w: wa.send_template(ANA, "nope", T.TemplateLanguage.ENGLISH_US), 132001),
    (
        "image-header template without its image",
        lambda wa, w: wa.send_template(ANA, "promo_photo", T.TemplateLanguage.ENGLISH_US),
        132000,
    ),
    (
        "text-header template given an image",
        lambda wa, w: wa.send_template(
            ANA,
            "welcome_back",
            T.TemplateLanguage.ENGLISH_US,
            params=[T.HeaderImage.params(image=LINK + ".png"), T.BodyText.params("Ana")],
        ),
        132012,
    ),
    (
        "four reply buttons",
        lambda wa, w: wa.send_message(ANA, "x", buttons=[types.Button(f"B{i}", f"b{i}") for i in range(4)]),
        131009,
    ),
    ("text over 4096 characters", lambda wa, w: wa.send_message(ANA, "x" * 4097), 100),
    ("upload of an unsupported type", lambda wa, w: wa.upload_media(b"RIFF0000WAVE", mime_type="audio/wav"), 131053),
    ("media url of unknown media", lambda wa, w: wa.get_media_url("999"), 100),
    ("mark read of an unknown message", lambda wa, w: wa.mark_message_as_read("wamid.nope"), 100),
    (
        "carousel with one card",
        lambda wa, w: wa.send_carousel(
            ANA, body="x", cards=[types.ImageCarouselCard(image=LINK + ".png", buttons=[types.Button("A", "a")])]
        ),
        131009,
    ),
]


@pytest.mark.parametrize(("name", "call"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
async def test_the_emulator_accepts_what_whatsapp_accepts_from_pywa(world: World, name: str, call: Call) -> None:
    before = len(world.emu.outbound)
    result = await world.call(lambda wa: call(wa, world))
    assert result is not None
    if name.startswith("send") or name.startswith("request") or name.startswith("remove"):
        assert len(world.emu.outbound) == before + 1
        assert world.emu.outbound[result.id].to == ANA


@pytest.mark.parametrize(("name", "call", "code"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_the_emulator_refuses_what_whatsapp_refuses_with_metas_code(
    world: World, name: str, call: Call, code: int
) -> None:
    with pytest.raises(WhatsAppError) as refused:
        await world.call(lambda wa: call(wa, world))
    assert refused.value.code == code
    assert refused.value.fbtrace_id


async def test_a_template_reads_with_fallback_values_and_its_buttons_pay_back_their_payloads(world: World) -> None:
    sent = await world.call(
        lambda wa: wa.send_template(
            ANA,
            "order_update",
            T.TemplateLanguage.ENGLISH_US,
            params=[
                T.HeaderText.params("#42"),
                T.BodyText.params(T.Currency(fallback_value="$19.99", code="USD", amount_1000=19990), "May 1"),
                T.QuickReplyButton.params(callback_data="stop-42", index=0),
            ],
        )
    )
    record = world.emu.outbound[sent.id]
    assert record.rendered == "Your total is $19.99, due May 1."
    tap = await world.ana.tap("Stop")
    body = json.loads(world.emu.inbound[tap.message_id].raw or b"{}")
    button = body["entry"][0]["changes"][0]["value"]["messages"][0]["button"]
    assert button == {"payload": "stop-42", "text": "Stop"}


async def test_media_sent_by_link_is_fetched_and_fails_with_131053_when_it_cannot_be(world: World) -> None:
    world.emu.statuses = StatusPolicy(failures=True)
    world.files["menu.pdf"] = (PDF, "application/pdf")
    good = await world.call(lambda wa: wa.send_document(ANA, f"{world.files_url}/menu.pdf", filename="menu.pdf"))
    missing = await world.call(lambda wa: wa.send_document(ANA, f"{world.files_url}/gone.pdf", filename="g.pdf"))
    wrong_kind = await world.call(lambda wa: wa.send_image(ANA, f"{world.files_url}/menu.pdf"))
    nowhere = await world.call(lambda wa: wa.send_document(ANA, "https://nonexistent.invalid/x.pdf", filename="x.pdf"))
    await world.emu.settle()
    outbound = world.emu.outbound
    assert outbound[good.id].status != "failed"
    for sent in (missing, wrong_kind, nowhere):
        assert outbound[sent.id].status == "failed"
        assert outbound[sent.id].errors[0]["code"] == 131053
    # pywa reads the failure from the status webhook as WhatsApp's 131053.
    statuses = [u for u in parse_all(world) if isinstance(u, types.MessageStatus)]
    failed = {s.id: s for s in statuses if s.status == types.MessageStatusType.FAILED}
    assert set(failed) == {missing.id, wrong_kind.id, nowhere.id}
    assert all(s.error is not None and s.error.code == 131053 for s in failed.values())


async def test_unknown_graph_paths_answer_graph_shaped_json(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.emu.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for method, path in (
            ("GET", "/v25.0/100200300/whatsapp_business_profile"),
            ("POST", "/v25.0/100200300/register"),
            ("GET", "/nothing/here"),
            ("POST", "/v25.0/100200300"),
        ):
            response = await http.request(method, path)
            assert response.status_code in (400, 404), (method, path)
            assert response.headers["content-type"].startswith("application/json")
            error = response.json()["error"]
            assert isinstance(error["code"], int) and error["message"] and error["fbtrace_id"]


# -- every webhook the emulator emits, parsed by pywa --------------------------------------------------

UPDATE_HANDLERS = (
    handlers.MessageHandler,
    handlers.CallbackButtonHandler,
    handlers.CallbackSelectionHandler,
    handlers.MessageStatusHandler,
    handlers.FlowCompletionHandler,
    handlers.PhoneNumberChangeHandler,
    handlers.IdentityChangeHandler,
    handlers.EditedMessageHandler,
    handlers.DeletedMessageHandler,
)


def parse_all(world: World) -> list[Any]:
    """Every webhook the bot received, through pywa's own webhook handling: signature check, update
    routing, construction of the typed update. An update pywa fails to build is missing here."""
    parsed: list[Any] = []
    wa = WhatsApp(phone_id=PNID, token=TOKEN, app_secret=SECRET, waba_id=world.emu.waba_id, server=None)
    wa.add_handlers(*(h(lambda _, update: parsed.append(update)) for h in UPDATE_HANDLERS))  # type: ignore[call-arg]
    for raw, signature in world.webhooks:
        assert wa.webhook_update_validator(raw, signature) is None, "pywa refused the signature"
        count = len(parsed)
        assert wa.webhook_update_handler(raw) == ("ok", 200)
        assert len(parsed) == count + 1, f"pywa could not build an update from {raw[:300]!r}"
    return parsed


async def every_user_action(world: World, user: SimulatedUser) -> None:
    """The user does everything the emulator lets a user do; the bot answers with something to tap."""
    emu = world.emu
    hi = await user.send_text("hello")
    await user.send_text("fwd", forwarded=True)
    await user.reply("quoting", to=hi.message_id)
    await user.send_image(PNG, "image/png", caption="look")
    await user.send_audio(b"OggS" + b"\x00" * 32)
    await user.send_audio(b"ID3" + b"\x00" * 32, mime_type="audio/mpeg", voice=False)
    await user.send_video(b"\x00" * 32, caption="v")
    await user.send_document(PDF, filename="a.pdf", mime_type="application/pdf")
    await user.send_sticker(b"RIFF" + b"\x00" * 32)
    await user.send_location(32.1, 34.8, name="Home", address="1 Main St")
    await user.send_contacts([("Bo Li", "+15550009999")])
    await user.react(hi.message_id, "👍")
    await user.unreact(hi.message_id)
    await user.send_unsupported("poll_creation")
    to = {"recipient": user.user_id} if user.wa_id is None else {"to": user.wa_id}
    buttons = await world.call(
        lambda wa: wa.send_message(next(iter(to.values())), "pick", buttons=[types.Button("Yes", "y")])
    )
    await user.tap("Yes", on=buttons.id)
    listed = await world.call(
        lambda wa: wa.send_message(
            next(iter(to.values())),
            "pick",
            buttons=types.SectionList("Menu", [types.Section("S", [types.SectionRow("Row", "r")])]),
        )
    )
    await user.tap("Row", on=listed.id)
    template = await world.call(
        lambda wa: wa.send_template(
            next(iter(to.values())), "welcome_back", T.TemplateLanguage.ENGLISH_US, params=[T.BodyText.params("A")]
        )
    )
    await user.tap("Yes", on=template.id)
    await user.send_message(
        "interactive",
        {"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent", "response_json": '{"flow_token": "t"}'}},
    )
    await user.send_message(
        "edit", {"original_message_id": hi.message_id, "message": {"type": "text", "text": {"body": "hello!"}}}
    )
    await user.send_message("revoke", {"original_message_id": hi.message_id})
    await emu.settle()


@pytest.mark.parametrize("who", ["number", "number and username", "number withheld", "username only"])
async def test_pywa_parses_every_webhook_the_emulator_emits(world: World, who: str) -> None:
    emu = world.emu
    emu.statuses = True
    if who == "number":
        user = world.ana
    elif who == "number and username":
        user = emu.user("447700900123", "Bo", username="bo.li")
    elif who == "number withheld":
        user = emu.user("5511987654321", "Cy", username="cy", withhold_number=True)
    else:
        user = emu.user(username="dee", name="Dee")
    await every_user_action(world, user)
    world.webhooks = [w for w in world.webhooks if user.user_id and user.user_id.encode() in w[0]]
    updates = parse_all(world)
    kinds = {type(u).__name__ for u in updates}
    assert {"Message", "CallbackButton", "CallbackSelection", "MessageStatus", "FlowCompletion"} <= kinds
    assert {"EditedMessage", "DeletedMessage"} <= kinds
    for update in updates:
        sender = update.from_user
        assert sender.bsuid == user.user_id
        assert sender.wa_id == user.shown_wa_id
        assert sender.username == user.username
    voice = [u for u in updates if isinstance(u, types.Message) and u.audio is not None]
    assert [v.audio.voice for v in voice] == [True, False]


def signed(raw: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()

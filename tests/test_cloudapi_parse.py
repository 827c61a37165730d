"""What a Cloud API webhook becomes once whatsagent has read it.

Each story starts from a recorded-style body in tests/data/cloudapi/ (our own ids and numbers, shapes as in
Meta's webhook docs, https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview,
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status,
and pywa's webhook fixtures, tests/data/updates in https://github.com/david-lev/pywa)
and says which neutral event the rest of whatsagent will see.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from whatsagent.channels.cloudapi.parse import parse_webhook
from whatsagent.errors import MalformedWebhook
from whatsagent.messages import (
    Audio,
    ButtonReply,
    CallPermissionReply,
    ChannelNotice,
    ContactPhone,
    Contacts,
    Context,
    Document,
    Edit,
    Event,
    FlowReply,
    Image,
    ListReply,
    Location,
    Media,
    Order,
    OrderItem,
    Pricing,
    ProviderError,
    Reaction,
    Referral,
    ReferredProduct,
    Revoke,
    SharedContact,
    StatusUpdate,
    Sticker,
    System,
    TemplateButton,
    Text,
    Unsupported,
    User,
    Video,
    inbound_adapter,
)

DATA = Path(__file__).parent / "data" / "cloudapi"
FIXTURES = sorted(path.stem for path in DATA.glob("*.json"))

CHANNEL = "cloudapi:shop"
ACCOUNT = "100200300400500"
BUSINESS = "15550001111"
ANA = User(wa_id="15552223333", name="Ana")
ANA_BSUID = "US.10000000000000000001"
SENT_AT = datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)  # "1760000000"
COMMON: dict[str, Any] = {"channel": CHANNEL, "account": ACCOUNT, "user": ANA, "timestamp": SENT_AT}


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return payload


def parse(name: str) -> list[Event]:
    return parse_webhook(load(name), channel=CHANNEL)


def only(name: str) -> Event:
    events = parse(name)
    assert len(events) == 1, events
    return events[0]


def sender(payload: dict[str, Any]) -> User:
    [message] = parse_webhook(payload, channel=CHANNEL)
    assert not isinstance(message, StatusUpdate | ChannelNotice), message
    return message.user


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- text and its context ---------------------------------------------------------------------------


def test_a_text_message_becomes_text_from_the_named_user() -> None:
    assert parse("text") == [Text(id="wamid.TEXT1", body="hi", **COMMON)]


def test_the_message_time_is_an_aware_utc_datetime() -> None:
    message = only("text")
    assert isinstance(message, Text)
    assert message.timestamp == SENT_AT
    assert message.timestamp.utcoffset() is not None and message.timestamp.utcoffset() == UTC.utcoffset(None)


def test_a_quoted_reply_says_which_message_it_answers_and_who_sent_that() -> None:
    assert only("reply") == Text(
        id="wamid.REPLY1",
        body="yes, that one",
        context=Context(reply_to="wamid.ORIGINAL1", reply_to_from=BUSINESS),
        **COMMON,
    )


def test_a_forwarded_message_is_marked_forwarded() -> None:
    message = only("forwarded")
    assert isinstance(message, Text)
    assert message.context == Context(forwarded=True, frequently_forwarded=False)


def test_a_frequently_forwarded_message_is_forwarded_too() -> None:
    message = only("frequently_forwarded")
    assert isinstance(message, Text)
    assert message.context == Context(forwarded=True, frequently_forwarded=True)


def test_a_message_from_a_click_to_whatsapp_ad_carries_the_ad() -> None:
    assert only("referral") == Text(
        id="wamid.REF1",
        body="Is this still available?",
        referral=Referral(
            source_url="https://fb.me/ad-example",
            source_id="120200000000000001",
            source_type="ad",
            headline="Spring sale",
            body="Everything 20% off",
            media_type="image",
            media_url="https://scontent.example.com/ad.jpg",
            ctwa_clid="ARAkLkA8rmlFeiCktEJQ",
        ),
        **COMMON,
    )


# --- media -------------------------------------------------------------------------------------------


def test_an_image_keeps_its_media_handle_and_caption() -> None:
    assert only("image") == Image(
        id="wamid.IMAGE1",
        media=Media(media_id="9001", mime_type="image/jpeg", sha256="aW1hZ2Utc2hhMjU2", caption="my receipt"),
        **COMMON,
    )


def test_an_image_with_a_lookaside_url_keeps_the_url() -> None:
    message = only("image_with_url")
    assert isinstance(message, Image)
    assert message.media.media_id == "9002"
    assert message.media.url is not None and message.media.url.startswith("https://lookaside.fbsbx.com/")
    assert message.media.caption is None


def test_a_video_is_a_video_with_its_caption() -> None:
    assert only("video") == Video(
        id="wamid.VIDEO1",
        media=Media(media_id="9003", mime_type="video/mp4", sha256="dmlkZW8=", caption="the noise it makes"),
        **COMMON,
    )


def test_an_audio_file_is_audio_without_the_voice_flag() -> None:
    assert only("audio") == Audio(
        id="wamid.AUDIO1",
        media=Media(media_id="9004", mime_type="audio/mpeg", sha256="YXVkaW8="),
        voice=False,
        **COMMON,
    )


def test_a_voice_note_is_an_audio_message_with_the_voice_flag() -> None:
    message = only("voice")
    assert isinstance(message, Audio)
    assert message.voice is True
    assert message.media == Media(media_id="9005", mime_type="audio/ogg; codecs=opus", sha256="dm9pY2U=")
    assert message.describe().startswith("[The user sent a voice note")


def test_a_document_keeps_its_file_name() -> None:
    assert only("document") == Document(
        id="wamid.DOC1",
        media=Media(
            media_id="9006",
            mime_type="application/pdf",
            sha256="ZG9j",
            caption="last month",
            filename="invoice-42.pdf",
        ),
        **COMMON,
    )


def test_a_sticker_says_whether_it_is_animated() -> None:
    still, animated = only("sticker"), only("sticker_animated")
    assert still == Sticker(
        id="wamid.STICKER1",
        media=Media(media_id="9007", mime_type="image/webp", sha256="c3RpY2tlcg=="),
        animated=False,
        **COMMON,
    )
    assert isinstance(animated, Sticker) and animated.animated is True


# --- location, contacts, orders ----------------------------------------------------------------------


def test_a_shared_place_is_a_location_with_its_name_and_address() -> None:
    assert only("location") == Location(
        id="wamid.LOC1",
        latitude=12.5,
        longitude=43.9,
        name="Harbour Café",
        address="1 Quay Street",
        url="https://maps.example.com/?q=harbour",
        **COMMON,
    )


def test_a_current_location_with_whole_degrees_is_still_a_location() -> None:
    message = only("location_current")
    assert isinstance(message, Location)
    assert (message.latitude, message.longitude, message.name) == (-33, 151.2, None)


def test_shared_contact_cards_keep_names_phones_emails_and_company() -> None:
    assert only("contacts") == Contacts(
        id="wamid.CONTACTS1",
        contacts=(
            SharedContact(
                formatted_name="Bo Li",
                first_name="Bo",
                last_name="Li",
                phones=(ContactPhone(phone="+1 555-444-5555", wa_id="15554445555", type="CELL"),),
                emails=("bo@example.com",),
                organization="Example Ltd",
            ),
            SharedContact(
                formatted_name="Cy",
                first_name="Cy",
                phones=(ContactPhone(phone="+1 555-666-7777", type="HOME"),),
            ),
        ),
        **COMMON,
    )


def test_an_order_from_the_catalog_lists_its_items() -> None:
    assert only("order") == Order(
        id="wamid.ORDER1",
        catalog_id="300400500600700",
        text=None,
        items=(
            OrderItem(product_retailer_id="SKU1", quantity=2, item_price=30, currency="USD"),
            OrderItem(product_retailer_id="SKU2", quantity=1, item_price=4.5, currency="USD"),
        ),
        **COMMON,
    )


# --- taps on what the bot sent -------------------------------------------------------------------------


def test_a_tapped_reply_button_is_a_button_reply_to_the_question() -> None:
    assert only("button_reply") == ButtonReply(
        id="wamid.BTN1",
        button_id="yes",
        title="Yes",
        context=Context(reply_to="wamid.ASKED1", reply_to_from=BUSINESS),
        **COMMON,
    )


def test_a_row_chosen_from_a_list_is_a_list_reply() -> None:
    assert only("list_reply") == ListReply(
        id="wamid.LIST1",
        row_id="row1",
        title="Tuesday",
        description="9:00 to 12:00",
        context=Context(reply_to="wamid.ASKED2", reply_to_from=BUSINESS),
        **COMMON,
    )


def test_a_completed_flow_arrives_with_its_answers_decoded() -> None:
    assert only("nfm_reply") == FlowReply(
        id="wamid.FLOW1",
        name="flow",
        body="Sent",
        response={"flow_token": "tok-1", "q1": "4"},
        context=Context(reply_to="wamid.ASKED3", reply_to_from=BUSINESS),
        **COMMON,
    )


def test_a_flow_answer_that_is_not_json_is_kept_verbatim_not_rejected() -> None:
    message = only("nfm_reply_bad_json")
    assert isinstance(message, FlowReply)
    assert message.response == {}
    assert message.raw_response == '{"q1": "4"'
    assert '{"q1": "4"' in message.describe()


@pytest.mark.parametrize("response_json", ["[1, 2]", '"done"', '{"a": NaN}', "[" * 100_000])
def test_a_flow_answer_that_is_json_but_not_an_object_is_kept_verbatim(response_json: str) -> None:
    payload = load("nfm_reply")
    message_json = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message_json["interactive"]["nfm_reply"]["response_json"] = response_json
    [message] = parse_webhook(payload, channel=CHANNEL)
    assert isinstance(message, FlowReply)
    assert (message.response, message.raw_response) == ({}, response_json)


def test_a_tapped_template_button_is_a_template_button_with_its_payload() -> None:
    assert only("template_button") == TemplateButton(
        id="wamid.TPLBTN1",
        payload="stop-promos",
        text="Stop",
        context=Context(reply_to="wamid.TEMPLATE1", reply_to_from=BUSINESS),
        **COMMON,
    )


def test_a_template_button_tap_without_context_is_still_a_template_button() -> None:
    message = only("template_button_without_context")
    assert isinstance(message, TemplateButton)
    assert (message.payload, message.text, message.context) == ("stop-promos", "Stop", None)


# --- reactions -----------------------------------------------------------------------------------------


def test_a_reaction_names_the_message_and_the_emoji_and_does_not_start_a_turn() -> None:
    message = only("reaction")
    assert message == Reaction(id="wamid.REACT1", message_id="wamid.TARGET1", emoji="👍", **COMMON)
    assert isinstance(message, Reaction) and not message.triggers_reply


def test_a_reaction_removed_with_an_empty_emoji_parses_as_removal() -> None:
    message = only("reaction_removed_empty")
    assert message == Reaction(id="wamid.REACT2", message_id="wamid.TARGET1", emoji=None, **COMMON)


def test_a_reaction_removed_without_an_emoji_parses_as_removal() -> None:
    message = only("reaction_removed_absent")
    assert message == Reaction(id="wamid.REACT3", message_id="wamid.TARGET1", emoji=None, **COMMON)


# --- notices and what WhatsApp could not deliver ---------------------------------------------------


def test_a_changed_number_is_a_system_notice_with_the_new_wa_id() -> None:
    message = only("system_changed_number")
    assert message == System(
        id="wamid.SYS1",
        system_type="user_changed_number",
        body="User A changed from \u200e15552223333 to 15559998888\u200e",
        new_wa_id="15559998888",
        channel=CHANNEL,
        account=ACCOUNT,
        user=User(wa_id="15552223333"),  # system messages come without value.contacts
        timestamp=SENT_AT,
    )
    assert isinstance(message, System) and not message.triggers_reply


def test_a_changed_identity_is_a_system_notice_without_a_new_number() -> None:
    message = only("system_identity_changed")
    assert isinstance(message, System)
    assert (message.system_type, message.body, message.new_wa_id) == (
        "customer_identity_changed",
        "User identity changed",
        None,
    )


def test_a_poll_is_unsupported_and_keeps_its_type_and_error() -> None:
    message = only("unsupported_poll")
    assert message == Unsupported(
        id="wamid.UNSUP1",
        original_type="poll_update",
        errors=(
            ProviderError(
                code=131051,
                title="Message type unknown",
                message="Message type unknown",
                details="Message type is currently not supported.",
            ),
        ),
        **COMMON,
    )
    # Answered (by default with the channel's short "I can't open that kind of message yet"), never dropped.
    assert isinstance(message, Unsupported) and message.triggers_reply


def test_an_edit_keeps_the_original_id_and_the_new_text() -> None:
    message = only("edit")
    assert isinstance(message, Edit) and message.user == ANA
    assert message.original_id == "wamid.TEXT1" and message.text == "hi there" and message.original_kind == "text"
    assert message.triggers_reply and message.describe() == "[The user edited their message to: hi there]"


def test_a_deletion_keeps_the_original_id_and_is_not_answered() -> None:
    message = only("revoke")
    assert isinstance(message, Revoke) and message.user == ANA
    assert message.original_id == "wamid.TEXT1" and not message.triggers_reply


def test_a_message_of_a_type_nobody_knows_yet_is_kept_as_unsupported() -> None:
    payload = load("text")
    message_json = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message_json["type"] = "hologram"
    message_json["hologram"] = {"id": "1"}
    assert parse_webhook(payload, channel=CHANNEL) == [
        Unsupported(id="wamid.TEXT1", original_type="hologram", **COMMON)
    ]


def test_an_interactive_message_of_an_unknown_kind_is_kept_as_unsupported() -> None:
    payload = load("button_reply")
    interactive = payload["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
    interactive["type"] = "something_new"
    interactive["something_new"] = {"x": 1}
    [message] = parse_webhook(payload, channel=CHANNEL)
    assert isinstance(message, Unsupported)
    assert message.original_type == "interactive.something_new"


def test_a_call_permission_answer_keeps_the_answer() -> None:
    payload = load("button_reply")
    interactive = payload["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
    interactive["type"] = "call_permission_reply"
    interactive["call_permission_reply"] = {
        "response": "accept",
        "is_permanent": False,
        "expiration_timestamp": 1760600000,
        "response_source": "user_action",
    }
    [message] = parse_webhook(payload, channel=CHANNEL)
    assert isinstance(message, CallPermissionReply)
    assert message.accepted and not message.permanent and message.expires_at == at(1760600000)
    assert message.source == "user_action"
    interactive["call_permission_reply"] = {"response": "reject", "response_source": "user_action"}
    [message] = parse_webhook(payload, channel=CHANNEL)
    assert isinstance(message, CallPermissionReply) and not message.accepted
    assert message.describe() == "[The user declined to be called]"


def test_a_question_about_a_product_keeps_the_product_and_an_ad_keeps_its_welcome_message() -> None:
    payload = load("reply")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["context"]["referred_product"] = {"catalog_id": "CAT1", "product_retailer_id": "SKU-9"}
    message["referral"] = {"source_type": "ad", "welcome_message": {"text": "Hi! Ask us anything."}}
    [parsed] = parse_webhook(payload, channel=CHANNEL)
    assert parsed.context is not None and parsed.context.referred_product == ReferredProduct(
        catalog_id="CAT1", product_retailer_id="SKU-9"
    )
    assert parsed.referral is not None and parsed.referral.welcome_message == "Hi! Ask us anything."


def test_an_interactive_message_without_its_body_keeps_the_webhook_error_instead_of_a_notice() -> None:
    assert parse("interactive_with_error") == [
        Unsupported(
            id="wamid.BROKEN1",
            original_type="interactive",
            context=Context(reply_to="wamid.ASKED5", reply_to_from=BUSINESS),
            errors=(
                ProviderError(
                    code=131000,
                    title="Something went wrong",
                    message="Something went wrong",
                    details="Unsupported webhook payload",
                ),
            ),
            **COMMON,
        )
    ]


def test_a_rate_limit_error_for_the_whole_number_is_a_channel_notice() -> None:
    assert parse("value_error_130429") == [
        ChannelNotice(
            channel=CHANNEL,
            account=ACCOUNT,
            errors=(
                ProviderError(
                    code=130429,
                    title="Rate limit hit",
                    message="Rate limit hit",
                    details="Cloud API message throughput has been reached.",
                ),
            ),
        )
    ]


# --- who wrote ---------------------------------------------------------------------------------------


def test_a_user_known_only_by_business_scoped_id_is_not_dropped() -> None:
    assert only("bsuid_only_user") == Text(
        id="wamid.BSUID1",
        body="hello from a username",
        channel=CHANNEL,
        account=ACCOUNT,
        user=User(
            wa_id=None, user_id=ANA_BSUID, name="Ana", username="@ana", parent_user_id="US.ENT.10000000000000000002"
        ),
        timestamp=SENT_AT,
    )


def test_a_user_known_by_phone_and_business_scoped_id_keeps_both() -> None:
    user = sender(load("user_with_bsuid"))
    assert user == User(
        wa_id="15552223333", user_id=ANA_BSUID, name="Ana", parent_user_id="US.ENT.10000000000000000002"
    )
    assert user.key == "15552223333"


def test_the_only_contact_completes_a_sender_it_does_not_contradict() -> None:
    payload = load("user_with_bsuid")
    value = payload["entry"][0]["changes"][0]["value"]
    del value["messages"][0]["from_user_id"]
    del value["contacts"][0]["wa_id"]
    assert sender(payload) == User(
        wa_id="15552223333", user_id=ANA_BSUID, name="Ana", parent_user_id="US.ENT.10000000000000000002"
    )


def test_a_contact_for_someone_else_does_not_name_the_sender() -> None:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = "15557770000"
    assert sender(payload) == User(wa_id="15557770000", name=None)


def test_a_sender_without_from_is_found_through_the_only_contact() -> None:
    payload = load("text")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
    assert sender(payload) == ANA


# --- statuses ----------------------------------------------------------------------------------------


def test_a_sent_status_echoes_the_callback_data_we_attached() -> None:
    assert parse("status_sent") == [
        StatusUpdate(
            channel=CHANNEL,
            account=ACCOUNT,
            message_id="wamid.OUT1",
            status="sent",
            recipient="15552223333",
            pricing=Pricing(billable=True, pricing_model="PMP", type="free_customer_service", category="service"),
            timestamp=at(1760000100),
            callback_data="turn-7:0",
        )
    ]


@pytest.mark.parametrize(
    ("name", "message_id", "state", "seconds"),
    [
        ("status_delivered", "wamid.OUT1", "delivered", 1760000101),
        ("status_read", "wamid.OUT1", "read", 1760000160),
        ("status_played", "wamid.OUT2", "played", 1760000200),
    ],
)
def test_delivered_read_and_played_ticks_are_status_updates(
    name: str, message_id: str, state: str, seconds: int
) -> None:
    status = only(name)
    assert isinstance(status, StatusUpdate)
    assert status.model_copy(update={"pricing": None}) == StatusUpdate(
        channel=CHANNEL,
        account=ACCOUNT,
        message_id=message_id,
        status=state,  # type: ignore[arg-type]
        recipient="15552223333",
        timestamp=at(seconds),
    )


def test_a_status_for_a_username_only_user_names_the_recipient_by_bsuid() -> None:
    payload = load("status_delivered")
    item = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    del item["recipient_id"]
    item["recipient_user_id"] = ANA_BSUID
    [status] = parse_webhook(payload, channel=CHANNEL)
    assert isinstance(status, StatusUpdate)
    assert status.recipient is None and status.recipient_user_id == ANA_BSUID
    assert status.pricing is not None and status.pricing.category == "service"


def test_a_failed_send_reports_why_with_its_error_code() -> None:
    status = only("status_failed")
    assert isinstance(status, StatusUpdate)
    assert (status.status, status.message_id, status.callback_data) == ("failed", "wamid.OUT3", "turn-9:0")
    assert [(e.code, e.title) for e in status.errors] == [(131047, "Re-engagement message")]
    assert status.errors[0].details.startswith("Message failed to send because more than 24 hours")


# --- whole webhooks ----------------------------------------------------------------------------------


def test_a_batch_across_two_entries_comes_out_in_payload_order_with_each_sender_named() -> None:
    events = parse("batch")
    assert [(type(e).__name__, getattr(e, "id", None) or getattr(e, "message_id", None)) for e in events] == [
        ("Text", "wamid.BATCH1"),
        ("Text", "wamid.BATCH2"),
        ("Image", "wamid.BATCH3"),
        ("StatusUpdate", "wamid.OUT4"),
        ("StatusUpdate", "wamid.OUT5"),
        ("Reaction", "wamid.BATCH4"),
    ]
    first, second = events[0], events[1]
    assert isinstance(first, Text) and isinstance(second, Text)
    assert first.user == ANA and first.timestamp == at(1760000001)
    assert second.user == User(wa_id="15554445555", name="Bo")
    assert all(e.channel == CHANNEL and e.account == ACCOUNT for e in events)


def test_a_template_status_update_is_not_bot_traffic() -> None:
    assert parse("non_messages_field") == []


def test_a_webhook_for_another_kind_of_object_is_ignored() -> None:
    payload = load("text")
    payload["object"] = "instagram"
    assert parse_webhook(payload, channel=CHANNEL) == []


def test_a_webhook_without_an_object_field_is_still_read() -> None:
    payload = load("text")
    del payload["object"]
    assert [e.id for e in parse_webhook(payload, channel=CHANNEL) if isinstance(e, Text)] == ["wamid.TEXT1"]


def test_a_webhook_with_no_entries_has_no_events() -> None:
    assert parse_webhook({"object": "whatsapp_business_account", "entry": []}, channel=CHANNEL) == []


@pytest.mark.parametrize("name", FIXTURES)
def test_every_parsed_event_survives_the_inbox_json_round_trip(name: str) -> None:
    for event in parse(name):
        if isinstance(event, StatusUpdate | ChannelNotice):
            assert type(event).model_validate_json(event.model_dump_json()) == event
        else:
            assert inbound_adapter.validate_json(inbound_adapter.dump_json(event)) == event


# --- malformed webhooks ------------------------------------------------------------------------------


def text_webhook(**message: Any) -> dict[str, Any]:
    payload = load("text")
    payload["entry"][0]["changes"][0]["value"]["messages"][0].update(message)
    return payload


def value_with(fixture: str = "text", /, **fields: Any) -> dict[str, Any]:
    payload = load(fixture)
    payload["entry"][0]["changes"][0]["value"].update(fields)
    return payload


def status_webhook(**status: Any) -> dict[str, Any]:
    payload = load("status_sent")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0].update(status)
    return payload


def location_webhook(**location: Any) -> dict[str, Any]:
    payload = load("location")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["location"].update(location)
    return payload


def without(payload: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """`payload` with the key at `path` removed."""
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


def value_without(name: str, *path: str | int) -> dict[str, Any]:
    """A fixture with the key at `path` (under `entry[0].changes[0].value`) removed."""
    return without(load(name), "entry", 0, "changes", 0, "value", *path)


VALUE = "entry[0].changes[0].value"
MESSAGE = f"{VALUE}.messages[0]"
NOBODY = "has neither `from` nor `from_user_id`, and no contact names its sender (message wamid.TEXT1)"

MALFORMED: list[tuple[str, Callable[[], object], str]] = [
    # the envelope
    ("a signed JSON array", lambda: [load("text")], "the webhook body must be a JSON object, got list"),
    ("a signed JSON string", lambda: "hi", "the webhook body must be a JSON object, got str"),
    ("a signed JSON null", lambda: None, "the webhook body must be a JSON object, got null"),
    ("no entry", lambda: without(load("text"), "entry"), "entry is missing"),
    ("entry as an object", lambda: {"entry": {}}, "entry must be a list, got dict"),
    ("an entry that is a string", lambda: {"entry": ["x"]}, "entry[0] must be an object, got str"),
    ("no changes", lambda: without(load("text"), "entry", 0, "changes"), "entry[0].changes is missing"),
    (
        "changes as an object",
        lambda: {"entry": [{"changes": {}}]},
        "entry[0].changes must be a list, got dict",
    ),
    (
        "a change that is a list",
        lambda: {"entry": [{"changes": [[]]}]},
        "entry[0].changes[0] must be an object, got list",
    ),
    (
        "a change without a field",
        lambda: without(load("text"), "entry", 0, "changes", 0, "field"),
        "entry[0].changes[0].field is missing",
    ),
    # the value
    (
        "a null value",
        lambda: {"entry": [{"changes": [{"field": "messages", "value": None}]}]},
        f"{VALUE} must be an object, got null",
    ),
    ("no value", lambda: {"entry": [{"changes": [{"field": "messages"}]}]}, f"{VALUE} is missing"),
    (
        "a value that is a list",
        lambda: {"entry": [{"changes": [{"field": "messages", "value": []}]}]},
        f"{VALUE} must be an object, got list",
    ),
    ("no metadata", lambda: value_without("text", "metadata"), f"{VALUE}.metadata is missing"),
    (
        "no phone number id",
        lambda: value_without("text", "metadata", "phone_number_id"),
        f"{VALUE}.metadata.phone_number_id is missing",
    ),
    ("messages as an object", lambda: value_with(messages={}), f"{VALUE}.messages must be a list, got dict"),
    ("messages as null", lambda: value_with(messages=None), f"{VALUE}.messages must be a list, got null"),
    ("statuses as a string", lambda: value_with(statuses="x"), f"{VALUE}.statuses must be a list, got str"),
    ("contacts as an object", lambda: value_with(contacts={}), f"{VALUE}.contacts must be a list, got dict"),
    ("errors as an object", lambda: value_with(errors={}), f"{VALUE}.errors must be a list, got dict"),
    (
        "contacts as a string beside statuses",
        lambda: value_with("status_sent", contacts="Ana"),
        f"{VALUE}.contacts must be a list, got str",
    ),
    (
        "a contact that is a string",
        lambda: value_with(contacts=["Ana"]),
        f"{VALUE}.contacts[0] must be an object, got str",
    ),
    (
        "a webhook error without a code",
        lambda: value_with(errors=[{"title": "x"}]),
        f"{VALUE}.errors[0].code is missing",
    ),
    # messages
    (
        "a message that is a string",
        lambda: value_with(messages=["hi"]),
        f"{MESSAGE} must be an object, got str",
    ),
    ("a message without id", lambda: value_without("text", "messages", 0, "id"), f"{MESSAGE}.id is missing"),
    (
        "a message without type",
        lambda: value_without("text", "messages", 0, "type"),
        f"{MESSAGE}.type is missing (message wamid.TEXT1)",
    ),
    (
        "a message from nobody",
        lambda: without(value_with(contacts=[]), "entry", 0, "changes", 0, "value", "messages", 0, "from"),
        f"{MESSAGE} {NOBODY}",
    ),
    (
        "a numeric sender",
        lambda: text_webhook(**{"from": 15552223333}),
        f"{MESSAGE}.from must be a string, got int",
    ),
    (
        "a text body that is a number",
        lambda: text_webhook(text={"body": 5}),
        f"{MESSAGE}.text.body must be a string, got int",
    ),
    ("a text without a body", lambda: text_webhook(text={}), f"{MESSAGE}.text.body is missing"),
    (
        "a text that is a list",
        lambda: text_webhook(text=["hi"]),
        f"{MESSAGE}.text must be an object, got list",
    ),
    (
        "a context that is a string",
        lambda: text_webhook(context="x"),
        f"{MESSAGE}.context must be an object, got str",
    ),
    (
        "message errors as an object",
        lambda: text_webhook(errors={}),
        f"{MESSAGE}.errors must be a list, got dict",
    ),
    (
        "a timestamp in words",
        lambda: text_webhook(timestamp="yesterday"),
        f"{MESSAGE}.timestamp must be unix seconds, got str 'yesterday'",
    ),
    (
        "a timestamp beyond the calendar",
        lambda: text_webhook(timestamp="9" * 30),
        f"{MESSAGE}.timestamp is not a valid unix time",
    ),
    (
        "a latitude as a string",
        lambda: location_webhook(latitude="12.5"),
        f"{MESSAGE}.location.latitude must be a number, got str (message wamid.LOC1)",
    ),
    (
        "a longitude as a boolean",
        lambda: location_webhook(longitude=True),
        f"{MESSAGE}.location.longitude must be a number, got bool",
    ),
    (
        "a location without latitude",
        lambda: value_without("location", "messages", 0, "location", "latitude"),
        f"{MESSAGE}.location.latitude is missing",
    ),
    # statuses
    (
        "a status that is a number",
        lambda: value_with(statuses=[1]),
        f"{VALUE}.statuses[0] must be an object, got int",
    ),
    (
        "a status without id",
        lambda: value_without("status_sent", "statuses", 0, "id"),
        f"{VALUE}.statuses[0].id is missing",
    ),
    (
        "a status with a null id",
        lambda: status_webhook(id=None),
        f"{VALUE}.statuses[0].id must be a non-empty string, got null",
    ),
    (
        "a status without a state",
        lambda: value_without("status_sent", "statuses", 0, "status"),
        f"{VALUE}.statuses[0].status is missing (message wamid.OUT1)",
    ),
    (
        "a status error without a code",
        lambda: status_webhook(errors=[{"title": "x"}]),
        f"{VALUE}.statuses[0].errors[0].code is missing",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [pytest.param(make, reason, id=story) for story, make, reason in MALFORMED]
)
def test_a_malformed_webhook_is_refused_with_a_precise_reason(payload: Callable[[], object], reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=re.escape(reason)):
        parse_webhook(payload(), channel=CHANNEL)


def mangled(node: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every place in a JSON tree, with every wrong kind of value (or nothing) put there."""
    if isinstance(node, dict):
        items: list[tuple[str | int, Any]] = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, child in items:
        for odd in (None, True, 0, -1.5, "", "x", [], {}, [None], {"x": 1}, ...):
            yield (*path, key), odd
        yield from mangled(child, (*path, key))


@pytest.mark.parametrize("name", FIXTURES)
def test_no_mangled_webhook_escapes_as_anything_but_malformed(name: str) -> None:
    original = load(name)
    for path, odd in mangled(original):
        payload = copy.deepcopy(original)
        node: Any = payload
        for key in path[:-1]:
            node = node[key]
        if odd is ...:
            del node[path[-1]]
        else:
            node[path[-1]] = odd
        try:
            events = parse_webhook(payload, channel=CHANNEL)
        except MalformedWebhook as exc:
            assert str(exc), path
            continue
        for event in events:  # what is accepted is stored, so it must survive the inbox's JSON
            if not isinstance(event, StatusUpdate | ChannelNotice):
                assert inbound_adapter.validate_json(inbound_adapter.dump_json(event)) == event, path


def test_a_status_whatsapp_added_later_is_skipped_not_refused() -> None:
    # Refusing it would make Meta redeliver the whole batch for up to 7 days.
    assert parse_webhook(status_webhook(status="deleted"), channel=CHANNEL) == []

"""What a Twilio webhook becomes once whatsagent has read it: the same neutral messages as the Cloud API.

Form bodies follow Twilio's docs (https://www.twilio.com/docs/messaging/guides/webhook-request,
https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks)
and a real capture's parameter set (our own ids and numbers).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest

from whatsagent.channels.twilio.parse import is_status_callback, parse_message, parse_status, to_address
from whatsagent.errors import MalformedWebhook
from whatsagent.messages import (
    Audio,
    ButtonReply,
    Document,
    Image,
    ListReply,
    Location,
    Sticker,
    TemplateButton,
    Text,
    Unsupported,
    User,
    Video,
    inbound_adapter,
)

ACCOUNT = "whatsapp:+14155238886"
SID = "SM0123456789abcdef0123456789abcdef"
MEDIA_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME0123456789abcdef0123456789abcdef"


def form(**fields: str) -> dict[str, str]:
    """A WhatsApp inbound form as Twilio posts it (the capture's fields), with `fields` on top."""
    base = {
        "SmsMessageSid": SID,
        "NumMedia": "0",
        "ProfileName": "Ana",
        "MessageType": "text",
        "SmsSid": SID,
        "WaId": "6285176810035",
        "SmsStatus": "received",
        "Body": "",
        "To": ACCOUNT,
        "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": SID,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "ChannelMetadata": ('{"type":"whatsapp","data":{"context":{"ProfileName":"Ana","WaId":"6285176810035"}}}'),
        "From": "whatsapp:+6285176810035",
        "ApiVersion": "2010-04-01",
    }
    base.update(fields)
    # Through the wire and back, as the webhook receives it.
    return dict(parse_qsl(urlencode(base), keep_blank_values=True))


def parse_one(fields: dict[str, str]):
    messages = parse_message(fields, channel="twilio-main", account=ACCOUNT)
    assert len(messages) == 1
    message = messages[0]
    assert inbound_adapter.validate_json(message.model_dump_json()) == message
    return message


def test_a_text_message_carries_who_wrote_what_and_twilios_message_sid() -> None:
    message = parse_one(form(Body="Hello, is the shop open?"))
    assert isinstance(message, Text)
    assert message.body == "Hello, is the shop open?"
    assert message.id == SID
    assert message.channel == "twilio-main"
    assert message.account == ACCOUNT
    assert message.user == User(wa_id="6285176810035", name="Ana")
    assert message.context is None and message.referral is None
    assert message.triggers_reply


def test_without_waid_the_sender_comes_from_the_from_address() -> None:
    fields = form(Body="hi")
    del fields["WaId"], fields["ProfileName"]
    message = parse_one(fields)
    assert message.user == User(wa_id="6285176810035")
    assert to_address(message.user) == "whatsapp:+6285176810035"


def test_a_sender_known_only_by_a_business_scoped_id_is_kept_as_such() -> None:
    fields = form(Body="hi", From="whatsapp:US.13491208655302741918")
    del fields["WaId"]
    message = parse_one(fields)
    assert message.user.user_id == "US.13491208655302741918"
    assert message.user.wa_id is None
    assert message.user.key == "US.13491208655302741918"


def test_a_photo_with_a_caption_reaches_the_agent_as_an_image_with_that_caption() -> None:
    message = parse_one(form(Body="my receipt", NumMedia="1", MediaUrl0=MEDIA_URL, MediaContentType0="image/jpeg"))
    assert isinstance(message, Image)
    assert message.media.url == MEDIA_URL
    assert message.media.mime_type == "image/jpeg"
    assert message.media.caption == "my receipt"
    assert message.media.media_id == "ME0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("mime", "kind", "extra"),
    [
        ("audio/ogg", Audio, {"voice": True}),
        ("audio/ogg; codecs=opus", Audio, {"voice": True}),
        ("audio/mpeg", Audio, {"voice": False}),
        ("video/mp4", Video, {}),
        ("application/pdf", Document, {}),
        ("text/vcard", Document, {}),
        ("image/webp", Sticker, {}),
        ("image/png", Image, {}),
    ],
)
def test_each_kind_of_medium_becomes_its_neutral_type(mime: str, kind: type, extra: dict) -> None:
    message = parse_one(form(NumMedia="1", MediaUrl0=MEDIA_URL, MediaContentType0=mime, MessageType="media"))
    assert isinstance(message, kind)
    assert message.media.mime_type == mime
    assert message.media.caption is None
    for name, value in extra.items():
        assert getattr(message, name) == value


def test_several_media_in_one_message_are_all_kept_with_stable_ids() -> None:
    fields = form(
        Body="both",
        NumMedia="2",
        MediaUrl0=MEDIA_URL,
        MediaContentType0="image/jpeg",
        MediaUrl1=MEDIA_URL + "2",
        MediaContentType1="application/pdf",
    )
    first, second = parse_message(fields, channel="t", account=ACCOUNT)
    assert isinstance(first, Image) and first.id == SID and first.media.caption == "both"
    assert isinstance(second, Document) and second.id == f"{SID}/1" and second.media.caption is None


def test_a_shared_location_keeps_its_coordinates_and_label() -> None:
    message = parse_one(
        form(
            MessageType="location",
            Latitude="-6.2088",
            Longitude="106.8456",
            Label="Monas",
            Address="Gambir, Jakarta",
        )
    )
    assert isinstance(message, Location)
    assert (message.latitude, message.longitude) == (-6.2088, 106.8456)
    assert message.name == "Monas"
    assert message.address == "Gambir, Jakarta"


def test_a_tap_on_a_template_quick_reply_keeps_its_payload_and_the_message_it_answers() -> None:
    message = parse_one(
        form(
            MessageType="button",
            Body="Yes, confirm",
            ButtonText="Yes, confirm",
            ButtonPayload="confirm:order-42",
            OriginalRepliedMessageSid="MMfedcba9876543210fedcba9876543210",
            OriginalRepliedMessageSender="whatsapp:+14155238886",
        )
    )
    assert isinstance(message, TemplateButton)
    assert message.text == "Yes, confirm"
    assert message.payload == "confirm:order-42"
    assert message.context is not None
    assert message.context.reply_to == "MMfedcba9876543210fedcba9876543210"
    assert message.context.reply_to_from == "14155238886"


def test_a_tap_on_a_session_quick_reply_is_a_button_reply() -> None:
    message = parse_one(form(MessageType="interactive", Body="Track", ButtonText="Track", ButtonPayload="track"))
    assert isinstance(message, ButtonReply)
    assert (message.button_id, message.title) == ("track", "Track")


def test_a_list_choice_is_a_list_reply() -> None:
    message = parse_one(
        form(
            MessageType="interactive",
            Body="Large",
            ListId="size-l",
            ListTitle="Large",
            ListDescription="30 cm",
        )
    )
    assert isinstance(message, ListReply)
    assert (message.row_id, message.title, message.description) == ("size-l", "Large", "30 cm")


def test_a_quoted_reply_and_a_forward_are_in_the_context() -> None:
    reply = parse_one(form(Body="this one", OriginalRepliedMessageSid="SMaaaa0000000000000000000000000000"))
    assert reply.context is not None and reply.context.reply_to == "SMaaaa0000000000000000000000000000"
    assert not reply.context.forwarded
    forwarded = parse_one(form(Body="look", Forwarded="true", FrequentlyForwarded="true"))
    assert forwarded.context is not None
    assert forwarded.context.forwarded and forwarded.context.frequently_forwarded
    plain = parse_one(form(Body="plain", Forwarded="false", FrequentlyForwarded="false"))
    assert plain.context is None


def test_a_click_to_whatsapp_ad_is_kept_as_the_referral() -> None:
    message = parse_one(
        form(
            Body="I saw your ad",
            ReferralBody="50% off today",
            ReferralHeadline="Summer sale",
            ReferralSourceId="120210000000000",
            ReferralSourceType="ad",
            ReferralSourceUrl="https://fb.me/abc",
            ReferralMediaContentType="image/jpeg",
            ReferralMediaUrl="https://example.com/ad.jpg",
            ReferralCtwaClid="ARAkLkA8rmlFeiCktEJQ",
        )
    )
    assert message.referral is not None
    assert message.referral.headline == "Summer sale"
    assert message.referral.source_type == "ad"
    assert message.referral.ctwa_clid == "ARAkLkA8rmlFeiCktEJQ"
    assert message.referral.media_url == "https://example.com/ad.jpg"


def test_a_message_with_nothing_readable_is_kept_as_unsupported_and_answered() -> None:
    message = parse_one(form(MessageType="unsupported"))
    assert isinstance(message, Unsupported)
    assert message.original_type == "unsupported"
    assert message.triggers_reply  # by the channel's short "I can't open that kind of message yet"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"MessageSid": "", "SmsMessageSid": "", "SmsSid": ""}, "MessageSid"),
        ({"MessageSid": "SM1<script>"}, "not a Twilio SID"),
        ({"NumMedia": "two"}, "NumMedia"),
        ({"NumMedia": "11"}, "NumMedia"),
        ({"NumMedia": "1"}, "MediaUrl0"),
        ({"Latitude": "north", "Longitude": "1"}, "Latitude"),
        ({"Latitude": "91", "Longitude": "1"}, "out of range"),
        ({"Latitude": "1", "Longitude": "nan"}, "Longitude"),
        ({"WaId": "", "From": ""}, "WaId"),
    ],
)
def test_a_form_that_is_not_a_whatsapp_message_is_refused_with_a_reason(fields: dict, reason: str) -> None:
    with pytest.raises(MalformedWebhook, match=reason):
        parse_message(form(Body="x", **fields), channel="t", account=ACCOUNT)


def status_form(status: str, **fields: str) -> dict[str, str]:
    base = {
        "SmsSid": SID,
        "SmsStatus": status,
        "MessageStatus": status,
        "ChannelToAddress": "+62851768XXXXX",
        "To": "whatsapp:+6285176810035",
        "ChannelPrefix": "whatsapp",
        "MessageSid": SID,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": ACCOUNT,
        "ApiVersion": "2010-04-01",
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("twilio_status", "state"),
    [("sent", "sent"), ("delivered", "delivered"), ("read", "read"), ("failed", "failed")],
)
def test_delivery_statuses_become_status_updates(twilio_status: str, state: str) -> None:
    update = parse_status(status_form(twilio_status), channel="t", account=ACCOUNT, callback_data="key-1")
    assert update is not None
    assert update.message_id == SID
    assert update.status == state
    assert update.recipient == "6285176810035"
    assert update.callback_data == "key-1"
    assert update.errors == ()


def test_undelivered_is_a_failure_that_carries_twilios_error_code() -> None:
    update = parse_status(
        status_form("undelivered", ErrorCode="63016", ErrorMessage="Outside the window"),
        channel="t",
        account=ACCOUNT,
        callback_data=None,
    )
    assert update is not None
    assert update.status == "failed"
    (error,) = update.errors
    assert error.code == 63016
    assert "24-hour" in error.title
    assert error.message == "Outside the window"


def test_a_failure_with_an_unknown_code_keeps_twilios_message() -> None:
    update = parse_status(
        status_form("failed", ErrorCode="30008", ErrorMessage="Unknown error"),
        channel="t",
        account=ACCOUNT,
        callback_data=None,
    )
    assert update is not None and update.errors[0].code == 30008 and update.errors[0].title == "Unknown error"


@pytest.mark.parametrize("twilio_status", ["queued", "accepted", "scheduled", "sending", "brand-new-status"])
def test_statuses_that_change_nothing_are_ignored(twilio_status: str) -> None:
    assert parse_status(status_form(twilio_status), channel="t", account=ACCOUNT, callback_data=None) is None


def test_a_status_callback_without_a_status_is_malformed() -> None:
    with pytest.raises(MalformedWebhook, match="MessageStatus"):
        parse_status(status_form(""), channel="t", account=ACCOUNT, callback_data=None)
    with pytest.raises(MalformedWebhook, match="ErrorCode"):
        parse_status(status_form("failed", ErrorCode="x"), channel="t", account=ACCOUNT, callback_data=None)


def test_status_callbacks_and_inbound_messages_are_told_apart() -> None:
    assert is_status_callback(status_form("delivered"))
    assert not is_status_callback(form(Body="hi"))

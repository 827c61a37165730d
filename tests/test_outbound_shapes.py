"""Outbound messages are neutral models; rows stored in the Cloud API shape before still read the same."""

from __future__ import annotations

import json

import pytest

from whatsagent.channels.cloudapi import CloudAPI
from whatsagent.channels.cloudapi.wire import body_for
from whatsagent.channels.twilio import Twilio
from whatsagent.channels.twilio.wire import message_form
from whatsagent.errors import InvalidMessage
from whatsagent.messages import User
from whatsagent.messages.outbound import (
    Button,
    ButtonsOut,
    Contact,
    ContactPhone,
    ContactsOut,
    MediaOut,
    ReactionOut,
    TemplateComponent,
    TemplateOut,
    TemplateParameter,
    outbound_adapter,
)

ANA = User(wa_id="15551234567")
GRAPH_COMPONENTS = [
    {"type": "header", "parameters": [{"type": "image", "image": {"id": "9001"}}]},
    {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}]},
    {"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": [{"type": "payload", "payload": "STOP"}]},
]
GRAPH_CARD = {
    "name": {"formatted_name": "Bo Li", "first_name": "Bo"},
    "phones": [{"phone": "+14155550123", "type": "CELL", "wa_id": "14155550123"}],
    "emails": [{"email": "bo@example.com", "type": "WORK"}],
    "org": {"company": "Acme"},
}


def test_a_template_row_stored_in_the_cloud_api_shape_reads_as_neutral_components_and_sends_the_same() -> None:
    stored = json.dumps(
        {"kind": "template", "name": "order_update", "language": "en_US", "components": GRAPH_COMPONENTS}
    )
    template = outbound_adapter.validate_json(stored)
    assert isinstance(template, TemplateOut)
    assert template.components[1] == TemplateComponent(
        part="body", parameters=(TemplateParameter(text="Ana"), TemplateParameter(text="#42"))
    )
    assert body_for(ANA, template)["template"]["components"] == GRAPH_COMPONENTS
    assert outbound_adapter.validate_json(template.model_dump_json()) == template
    assert "graph" not in template.model_dump_json() and '"type"' not in template.model_dump_json()


def test_twilio_numbers_the_body_parameters_of_neutral_components() -> None:
    template = TemplateOut(name="HX" + "a" * 32, components=GRAPH_COMPONENTS)  # type: ignore[arg-type]
    form = dict(message_form(template, content_sids={}, media_url=lambda m: ""))
    assert json.loads(form["ContentVariables"]) == {"1": "Ana", "2": "#42"}


def test_a_contact_card_stored_in_the_cloud_api_shape_reads_as_a_neutral_contact_and_sends_the_same() -> None:
    message = outbound_adapter.validate_json(json.dumps({"kind": "contacts", "contacts": [GRAPH_CARD]}))
    assert isinstance(message, ContactsOut)
    (card,) = message.contacts
    assert card.name == "Bo Li" and card.phones == (
        ContactPhone(phone="+14155550123", label="CELL", wa_id="14155550123"),
    )
    assert body_for(ANA, message)["contacts"] == [GRAPH_CARD]
    assert outbound_adapter.validate_json(message.model_dump_json()) == message


def test_a_neutral_contact_card_is_text_on_twilio() -> None:
    card = Contact(name="Bo Li", phones=(ContactPhone(phone="+14155550123"),))
    assert message_form(ContactsOut(contacts=(card,)), content_sids={}, media_url=lambda m: "") == [
        ("Body", "Bo Li\n+14155550123")
    ]


def test_each_channel_checks_what_it_can_send_with_one_error_type() -> None:
    cloud = CloudAPI(access_token="t", phone_number_id="1", verify_token="v", app_secret="s")
    twilio = Twilio(account_sid="AC" + "0" * 32, auth_token="t", from_number="+14155238886")
    long_title = ButtonsOut(body="Pick", buttons=(Button(id="a", title="Confirm my order right now"),))
    with pytest.raises(InvalidMessage, match="at most 20"):
        cloud.check(long_title)
    twilio.check(long_title)  # Twilio sends ad-hoc buttons as text: no title limit
    cloud.check(ReactionOut(message_id="wamid.1", emoji="👍"))
    with pytest.raises(InvalidMessage, match="reactions"):
        twilio.check(ReactionOut(message_id="SM1", emoji="👍"))
    stored = MediaOut(media_type="image", stored="ab" * 32)
    cloud.check(stored)
    twilio.check(stored)
    with pytest.raises(InvalidMessage, match="only by URL"):
        twilio.check(MediaOut(media_type="image", media_id="123"))

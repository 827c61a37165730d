"""Twilio's WhatsApp API: form webhooks in (signed, parsed at the edge), Messages API sends out.

``channel.py`` is the `Twilio` channel; ``webhook.py`` the inbound HTTP edge; ``client.py`` the REST
calls; ``parse.py`` form fields to neutral events; ``wire.py`` neutral messages to form fields;
``errors.py`` Twilio's error codes; ``signature.py`` ``X-Twilio-Signature``; ``media.py`` the signed
links stored media are published under.
"""

from whatsagent.channels.twilio.channel import Twilio

__all__ = ["Twilio"]

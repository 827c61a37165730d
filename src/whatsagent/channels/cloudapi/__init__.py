"""Meta's WhatsApp Cloud API: webhooks in (verified, parsed at the edge), Graph API sends out.

``channel.py`` is the `CloudAPI` channel; ``webhook.py`` the inbound HTTP edge; ``client.py`` the Graph
API calls; ``parse.py`` webhook payloads to neutral events; ``wire.py`` neutral messages to Graph API
bodies; ``errors.py`` Meta's error codes; ``signature.py`` ``X-Hub-Signature-256``.
"""

from whatsagent.channels.cloudapi.channel import CloudAPI
from whatsagent.channels.cloudapi.errors import GraphAPIError
from whatsagent.channels.cloudapi.wire import body_for, recipient

__all__ = ["CloudAPI", "GraphAPIError", "body_for", "recipient"]

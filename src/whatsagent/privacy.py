"""What never appears in logs in full: users' phone numbers, tokens and database passwords; and no
value a sender chooses makes a log line long."""

from __future__ import annotations


def masked(conversation: str) -> str:
    """A conversation key (``channel|wa_id``) with only the user's last four digits."""
    channel, _, user = conversation.rpartition("|")
    return f"{channel}|…{user[-4:]}" if user else conversation


def redacted(url: str) -> str:
    """A database URL without its credentials."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


LOG_VALUE_MAX = 300
"""Characters of a sender-chosen value (an id, a reason quoting one) kept in a log line or a reply."""


def shorten(text: str, limit: int = LOG_VALUE_MAX) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit:,} more characters]"

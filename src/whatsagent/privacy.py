"""What never appears in logs in full: users' phone numbers and database passwords."""

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

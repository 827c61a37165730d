"""The front: a small process of its own that acknowledges webhooks while the bot's process runs turns.

One process runs webhooks and turns on one interpreter; when turns keep it busy (hundreds of them at
once, each a few milliseconds of Python), an acknowledgement waits for the interpreter like everything
else, and Meta redelivers what it waits too long for. ``whatsagent serve --front`` (SQLite) puts a
process in front that does nothing else:

    Meta / Twilio --> front: read the body within bounds, verify the signature, parse to events
                      --> spool: one durable INSERT (its own SQLite file, group commit, fsync)
                      <-- 200 OK
                      --> the bot's process over a Unix socket, in spool order (`link`): `AgentOS.accept`,
                          the inbox as always (deduped), then "stored through id N"; the front forgets
                          those rows. Whatever is not confirmed is sent again on reconnect and at the
                          next start: nothing acknowledged is lost, and the inbox's dedup keeps the
                          second delivery from being answered twice.
    anything else (console, operator API, /health, /ready, media) --> proxied to the bot's process.

The bot's process starts the front and restarts it if it dies; the front ends with the bot's process.
"""

import os


def wanted(front: bool | None = None) -> bool:
    """Whether to serve behind a front: `front` when given, else ``WHATSAGENT_FRONT``."""
    if front is not None:
        return front
    return os.environ.get("WHATSAGENT_FRONT", "").lower() in ("1", "true", "yes", "on")

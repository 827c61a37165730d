"""Prometheus metrics, served at ``/metrics`` (prometheus-client, one registry per process).

Each process counts its own, as Prometheus expects: scrape web and worker processes alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_M = TypeVar("_M", Counter, Gauge, Histogram)

# `_created` timestamps double every series for little use here.
disable_created_metrics()
registry = CollectorRegistry()


def exposition() -> bytes:
    return generate_latest(registry)


inbound = Counter(
    "whatsagent_inbound_messages",
    "Inbound messages by channel and result: stored (new) or duplicate (a redelivery, stored once).",
    ("channel", "result"),
    registry=registry,
)
webhook_store_seconds = Histogram(
    "whatsagent_webhook_store_seconds",
    "Time to commit a webhook's events durably: the part of the acknowledgement whatsagent controls.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=registry,
)
front_handover_seconds = Histogram(
    "whatsagent_front_handover_seconds",
    "Behind a front (serve --front): time from the front's acknowledgement (its spool commit) to the inbox's.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
    registry=registry,
)
turn_seconds = Histogram(
    "whatsagent_turn_seconds",
    "Time from a turn's start to its answer being stored (the agent's thinking, mostly).",
    ("channel",),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0),
    registry=registry,
)
queue_depth = Gauge(
    "whatsagent_queue_depth",
    "Jobs waiting or running in this process's work queue (conversation wake-ups, memory capture).",
    registry=registry,
)
sends = Counter(
    "whatsagent_sends",
    "Send attempts by channel, result (sent, retried, failed, parked) and provider error code.",
    ("channel", "result", "code"),
    registry=registry,
)
turns_set_aside = Counter(
    "whatsagent_turns_set_aside",
    "Poison turns: started max_attempts times without finishing (or failing each time); the user got an apology.",
    ("channel",),
    registry=registry,
)
turns_interrupted = Counter(
    "whatsagent_turns_interrupted",
    "Turns whose agent run was started again because the user wrote while it thought (policy interrupt).",
    ("channel",),
    registry=registry,
)
lanes_lost = Counter(
    "whatsagent_lanes_lost",
    "Turns stopped because another holder claimed their conversation's lane (this one was presumed gone).",
    registry=registry,
)
window_fallbacks = Counter(
    "whatsagent_window_fallbacks",
    "Fallback templates sent because the 24-hour customer service window was closed.",
    ("channel",),
    registry=registry,
)
parked = Counter(
    "whatsagent_parked_messages",
    "Free-form messages held back because the 24-hour window was closed.",
    ("channel",),
    registry=registry,
)
delivery_statuses = Counter(
    "whatsagent_delivery_statuses",
    "Status webhooks (sent, delivered, read, failed) received for the bot's messages.",
    ("channel", "status"),
    registry=registry,
)
sending_stopped = Gauge(
    "whatsagent_sending_stopped",
    "1 while a channel's sending is stopped because its access token was rejected (code 190/0).",
    ("channel",),
    registry=registry,
)


def cached_labels(metric: _M) -> Callable[..., _M]:
    """`metric.labels` taking the label values in order, each child looked up once: prometheus-client
    validates the names and takes a lock at every ``labels()`` (about 4 µs), for the per-message series."""
    return functools.lru_cache(maxsize=256)(metric.labels)


inbound_by = cached_labels(inbound)
"""``inbound_by(channel, result)``."""
sends_by = cached_labels(sends)
"""``sends_by(channel, result, code)``."""
turn_seconds_by = cached_labels(turn_seconds)
"""``turn_seconds_by(channel)``."""

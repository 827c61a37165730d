"""Prometheus metrics, in the text exposition format, served at ``/metrics``.

A handful of counters and gauges with labels is all whatsagent reports, so they are kept here rather
than pulling in a client library: each process counts its own, as Prometheus expects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        key = tuple(str(labels.get(name, "")) for name in self.labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        return self._values.get(tuple(str(labels.get(name, "")) for name in self.labels), 0.0)

    def samples(self) -> list[tuple[tuple[str, ...], float]]:
        with self._lock:
            return sorted(self._values.items())


class Gauge(Counter):
    """A value that goes up and down (e.g. whether a channel's sending is stopped)."""

    kind = "gauge"

    def set(self, value: float, **labels: object) -> None:
        key = tuple(str(labels.get(name, "")) for name in self.labels)
        with self._lock:
            self._values[key] = value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Counter] = []

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        metric = Counter(name, help, labels)
        self.metrics.append(metric)
        return metric

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        metric = Gauge(name, help, labels)
        self.metrics.append(metric)
        return metric

    def exposition(self) -> str:
        """Every metric in Prometheus' text format (version 0.0.4)."""
        lines: list[str] = []
        for metric in self.metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            for key, value in metric.samples():
                labels = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(metric.labels, key, strict=True))
                lines.append(f"{metric.name}{{{labels}}} {value:g}" if labels else f"{metric.name} {value:g}")
        return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

registry = Registry()

sends = registry.counter(
    "whatsagent_sends_total",
    "Send attempts by channel, result (sent, retried, failed, parked) and provider error code.",
    ("channel", "result", "code"),
)
window_fallbacks = registry.counter(
    "whatsagent_window_fallbacks_total",
    "Fallback templates sent because the 24-hour customer service window was closed.",
    ("channel",),
)
parked = registry.counter(
    "whatsagent_parked_messages_total",
    "Free-form messages held back because the 24-hour window was closed.",
    ("channel",),
)
delivery_statuses = registry.counter(
    "whatsagent_delivery_statuses_total",
    "Status webhooks (sent, delivered, read, failed) received for the bot's messages.",
    ("channel", "status"),
)
sending_stopped = registry.gauge(
    "whatsagent_sending_stopped",
    "1 while a channel's sending is stopped because its access token was rejected (code 190/0).",
    ("channel",),
)

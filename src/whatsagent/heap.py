"""Python's cyclic garbage collector, set for a server that runs agents.

CPython runs a young collection every 700 net allocations of container objects (lists, dicts, class
instances), an older one every tenth of those and, every tenth of those, a full collection that walks
every object the process holds, loaded modules, agents and models included (``gc.get_threshold()`` is
``(700, 10, 10)``). One pydantic-ai turn allocates tens of thousands of containers: messages, run
contexts, graph tasks, validated models, HTTP objects. So a busy server collects many times per turn and
walks its whole heap about every 1.3 s under load, ~120 ms of CPU each time.
Measured with the OpenAI provider at zero latency (``./scripts/bench provider --agents
openai+gcoff,openai``): ×0.80–0.82 bot CPU per turn with the settings below.

So, while the server runs:

- from ready until its warm-up has loaded pydantic-ai and built the models, automatic collection is
  paused (`Tuning.pause`). The warm-up allocates a few hundred thousand objects, nearly all for good;
  with the collector on, they triggered full collections walking the whole heap, each holding up every
  webhook for 100–200 ms (measured: 103 and 199 ms, 0.7 s and 1.8 s after ready, while the first
  webhooks of a load waited for their acknowledgement). What goes uncollected is small: start-up and the
  warm-up of the OpenAI provider's agent, run wholly without collection, left 2,471 objects in cycles;
- once warm, `Tuning.tune` freezes what is alive: the modules, agents, models and the app move to a
  permanent generation that no collection walks again (``gc.freeze``). Nothing is collected first: that
  would walk every object once more (~220 ms for 340,000 objects here) to free those few thousand;
- and raises the thresholds to `THRESHOLDS`: garbage in cycles is still collected, in fewer, larger
  passes. Between passes the young generation holds up to 20,000 objects, a few MB at most.

`whatsagent serve` pauses collection from before it imports the application until the server pauses it
for its warm-up (`start_up`, `end_start_up`): importing and building an application creates a
couple of hundred thousand objects for good, and the full collections among them cost start-up about a
tenth of its time (measured: import and build of the benchmark's OpenAI app 1.04–1.18 s paused,
1.14–1.41 s not).

`Tuning.restore` (when the server stops) puts the collector back as it found it and unfreezes, so a
process that starts and stops servers (tests) does not keep their objects. ``AgentOS(gc_thresholds=None)`` or
``WHATSAGENT_GC_THRESHOLDS=off`` leaves the collector as the application set it;
``AgentOS(gc_thresholds=(20000, 50, 100))`` or ``WHATSAGENT_GC_THRESHOLDS=20000,50,100`` picks other
thresholds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from collections.abc import Iterator
from typing import Literal

from whatsagent.errors import ConfigurationError

log = logging.getLogger(__name__)

THRESHOLDS = (20000, 50, 100)
"""Young, middle and old generation thresholds while the server runs (CPython's: 700, 10, 10)."""

Thresholds = tuple[int, int, int]

_lock = threading.Lock()
_original: tuple[Thresholds, bool] | None = None
"""The collector as the process had it before any server changed it: thresholds, and whether it ran."""
_active: list[Tuning] = []
"""The servers of this process that changed the collector, oldest first."""


def configured(value: Thresholds | Literal["auto"] | None = "auto") -> Thresholds | None:
    """The thresholds to use: `value` from `AgentOS(gc_thresholds=...)`, else ``WHATSAGENT_GC_THRESHOLDS``,
    else `THRESHOLDS`; None leaves the collector alone."""
    if value != "auto":
        if value is not None and not _usable(value):
            raise ConfigurationError(
                f"gc_thresholds={value!r}: give three positive whole numbers, e.g. (20000, 50, 100), or None"
            )
        return value
    raw = os.environ.get("WHATSAGENT_GC_THRESHOLDS", "").strip().lower()
    if not raw:
        return THRESHOLDS
    if raw in ("off", "none", "no", "false"):
        return None
    try:
        parsed = tuple(int(part) for part in raw.split(","))
    except ValueError:
        parsed = ()
    if not _usable(parsed):
        raise ConfigurationError(
            f"WHATSAGENT_GC_THRESHOLDS={raw!r}: give three positive whole numbers, e.g. 20000,50,100, or off"
        )
    return parsed  # type: ignore[return-value]


def _usable(value: tuple[object, ...]) -> bool:
    return len(value) == 3 and all(isinstance(n, int) and n > 0 for n in value)


class Tuning:
    """One server's hold on the collector: `pause` while it warms up, `tune` once warm, `restore` when it
    stops. Several servers in one process (tests) combine: collection is paused while any of them warms
    up, runs with the latest server's thresholds otherwise, and is put back as it was when the last stops."""

    def __init__(self) -> None:
        self.state: Literal["idle", "paused", "tuned"] = "idle"
        self.thresholds: Thresholds | None = None

    def pause(self) -> None:
        """No automatic collection until `tune` (the server is ready, its warm-up about to load agents)."""
        self._set("paused")

    def tune(self, thresholds: Thresholds) -> None:
        """Freeze what is alive and collect with `thresholds` (the server is ready and warm)."""
        self.thresholds = thresholds
        with _lock:
            gc.freeze()
        self._set("tuned")
        if log.isEnabledFor(logging.DEBUG):  # counting them walks them all (~30 ms)
            log.debug("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), thresholds)

    def restore(self) -> None:
        """This server no longer holds the collector (it stops)."""
        self._set("idle")

    def _set(self, state: Literal["idle", "paused", "tuned"]) -> None:
        global _original
        with _lock:
            if state != "idle" and not _active:
                _original = (gc.get_threshold(), gc.isenabled())  # type: ignore[assignment]
            if self in _active:
                _active.remove(self)
            self.state = state
            if state != "idle":
                _active.append(self)
            _apply()


def _apply() -> None:
    """Set the collector from what the running servers hold (under `_lock`)."""
    global _original
    if _original is None:
        return
    thresholds, enabled = _original
    if not _active:
        gc.set_threshold(*thresholds)
        if enabled:
            gc.enable()
        else:
            gc.disable()
        gc.unfreeze()
        _original = None
        return
    tuned = [t.thresholds for t in _active if t.state == "tuned" and t.thresholds is not None]
    gc.set_threshold(*(tuned[-1] if tuned else thresholds))
    if not enabled or any(t.state == "paused" for t in _active):
        gc.disable()
    else:
        gc.enable()


_START_UP = Tuning()


@contextlib.contextmanager
def start_up(*, paused: bool = True) -> Iterator[None]:
    """No automatic collection while `whatsagent serve` (or `demo`) imports and starts the application,
    unless ``WHATSAGENT_GC_THRESHOLDS=off`` or not `paused`: the server ends the pause once ready
    (`end_start_up`), and leaving the block ends it whatever happened."""
    if paused and configured() is not None:
        _START_UP.pause()
    try:
        yield
    finally:
        end_start_up()


def end_start_up() -> None:
    """End the pause of `start_up` (the server has taken the collector over, or is not going to): harmless
    when there was none."""
    _START_UP.restore()

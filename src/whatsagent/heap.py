"""Python's cyclic garbage collector, set for a server that runs agents.

CPython runs a young collection every 700 net allocations of container objects (lists, dicts, class
instances), an older one every tenth of those and, every tenth of those, a full collection that walks
every object the process holds, loaded modules, agents and models included (``gc.get_threshold()`` is
``(700, 10, 10)``). One pydantic-ai turn allocates tens of thousands of containers: messages, run
contexts, graph tasks, validated models, HTTP objects. So a busy server collects many times per turn and
walks its whole heap about every 1.3 s under load, ~120 ms of CPU each time.
Measured with the OpenAI provider at zero latency (``./scripts/bench provider --agents
openai+gcoff,openai``): ×0.80–0.82 bot CPU per turn with the settings below.

So once the server is ready (and its warm-up has loaded pydantic-ai and built the models), `tune`:

- collects the young generations (the start-up's recent garbage) and freezes what is alive: the modules,
  agents, models and the app move to a permanent generation that no collection walks again
  (``gc.freeze``). Not a full collection: that would walk every object once more, and in a process that
  starts many servers (tests) each start would pay for the whole heap;
- raises the thresholds to `THRESHOLDS`: garbage in cycles is still collected, in fewer, larger passes.
  Between passes the young generation holds up to 20,000 objects, a few MB at most.

`restore` (when the server stops) puts back the thresholds it found and unfreezes, so a process that
starts and stops servers (tests) does not keep their objects. ``AgentOS(gc_thresholds=None)`` or
``WHATSAGENT_GC_THRESHOLDS=off`` leaves the collector as the application set it;
``AgentOS(gc_thresholds=(20000, 50, 100))`` or ``WHATSAGENT_GC_THRESHOLDS=20000,50,100`` picks other
thresholds.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Literal

from whatsagent.errors import ConfigurationError

log = logging.getLogger(__name__)

THRESHOLDS = (20000, 50, 100)
"""Young, middle and old generation thresholds while the server runs (CPython's: 700, 10, 10)."""

Thresholds = tuple[int, int, int]

_lock = threading.Lock()
_saved: list[Thresholds] = []  # what each running server found, innermost last


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


def tune(thresholds: Thresholds) -> None:
    """Collect, freeze what is alive and raise the thresholds (once the server is ready and warm)."""
    with _lock:
        _saved.append(gc.get_threshold())  # type: ignore[arg-type]
        gc.collect(1)
        gc.freeze()
        gc.set_threshold(*thresholds)
    log.debug("garbage collector: %d objects frozen, thresholds %s", gc.get_freeze_count(), thresholds)


def restore() -> None:
    """Undo the last `tune`: its thresholds back, and the frozen objects collectable again."""
    with _lock:
        if not _saved:
            return
        gc.set_threshold(*_saved.pop())
        if not _saved:
            gc.unfreeze()

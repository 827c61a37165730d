"""A running server collects garbage less often and never walks what start-up loaded, and still frees
cyclic garbage; stopping it puts Python's collector back as it was."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from whatsagent import AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.heap import THRESHOLDS

CHANNEL = {"access_token": "t", "phone_number_id": "1", "app_secret": "s", "verify_token": "v"}


async def echo(ctx):  # an agent costing nothing
    return "ok"


def _os(tmp_path, **options) -> AgentOS:
    # One loop: the test waits for the warm-up's event, which belongs to the loop turns run on.
    return AgentOS(
        channels=[CloudAPI(agent=echo, **CHANNEL)],
        database=f"sqlite:///{tmp_path}/bot.db",
        turn_thread=False,
        **options,
    )


async def test_once_warm_the_server_freezes_start_up_objects_and_collects_less_often(tmp_path, monkeypatch):
    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS", raising=False)
    before = gc.get_threshold()
    agent_os = _os(tmp_path)
    async with agent_os.lifespan():
        await agent_os._warmed.wait()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 10_000, "the loaded modules and the app are frozen"
        assert gc.get_threshold() != before

        class Node:
            pass

        cycle = Node()
        cycle.me = cycle  # type: ignore[attr-defined]
        alive = weakref.ref(cycle)
        del cycle
        kept = [[] for _ in range(THRESHOLDS[0] * 2)]  # enough new containers for a young collection
        assert alive() is None, "garbage in a cycle is still collected, without anyone calling gc.collect"
        del kept
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0, "stopping the server unfreezes"


async def test_the_collector_can_be_left_alone_or_given_other_thresholds(tmp_path, monkeypatch):
    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS", raising=False)
    before = gc.get_threshold()
    agent_os = _os(tmp_path / "a", gc_thresholds=None)
    async with agent_os.lifespan():
        await agent_os._warmed.wait()
        assert gc.get_threshold() == before and gc.get_freeze_count() == 0

    monkeypatch.setenv("WHATSAGENT_GC_THRESHOLDS", "off")
    assert _os(tmp_path / "b").gc_thresholds is None

    monkeypatch.setenv("WHATSAGENT_GC_THRESHOLDS", "30000,40,60")
    agent_os = _os(tmp_path / "c")
    async with agent_os.lifespan():
        await agent_os._warmed.wait()
        assert gc.get_threshold() == (30000, 40, 60)
    assert gc.get_threshold() == before

    assert _os(tmp_path / "d", gc_thresholds=(9000, 9, 9)).gc_thresholds == (9000, 9, 9)  # the argument wins


@pytest.mark.parametrize("value", ["lots", "1,2", "0,10,10", "-5,10,10"])
def test_unusable_thresholds_are_refused_with_what_to_write(tmp_path, monkeypatch, value):
    monkeypatch.setenv("WHATSAGENT_GC_THRESHOLDS", value)
    with pytest.raises(ConfigurationError, match=r"WHATSAGENT_GC_THRESHOLDS=.*e\.g\. 20000,50,100, or off"):
        _os(tmp_path)
    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS")
    with pytest.raises(ConfigurationError, match=r"gc_thresholds=\(0, 1, 1\).*e\.g\. \(20000, 50, 100\)"):
        _os(tmp_path, gc_thresholds=(0, 1, 1))


async def test_a_server_stopped_during_its_warm_up_leaves_the_collector_alone(tmp_path, monkeypatch):
    import threading

    from whatsagent import app

    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS", raising=False)
    release, finished = threading.Event(), threading.Event()

    def slow_warm_up(responders) -> None:  # a warm-up still loading models when the server stops
        release.wait(60)
        finished.set()

    monkeypatch.setattr(app, "_warm_up", slow_warm_up)
    before = gc.get_threshold()
    agent_os = _os(tmp_path)
    async with agent_os.lifespan():
        pass
    release.set()
    await asyncio.to_thread(finished.wait, 60)
    await agent_os._warmed.wait()  # the warm-up's end, seen by its loop
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_no_collection_runs_while_the_warm_up_loads_and_it_resumes_once_warm(tmp_path, monkeypatch):
    """The warm-up's imports allocate hundreds of thousands of objects for good: collecting while they
    load walked the whole heap and held up the first webhooks of a load for 100–200 ms at a time."""
    import threading

    from whatsagent import app

    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS", raising=False)
    loading, release = threading.Event(), threading.Event()
    enabled_while_loading: list[bool] = []

    def warm_up(responders) -> None:
        enabled_while_loading.append(gc.isenabled())
        loading.set()
        release.wait(60)

    monkeypatch.setattr(app, "_warm_up", warm_up)
    before = gc.get_threshold()
    agent_os = _os(tmp_path)
    async with agent_os.lifespan():
        await asyncio.to_thread(loading.wait, 60)
        assert enabled_while_loading == [False] and not gc.isenabled()
        release.set()
        await agent_os._warmed.wait()
        assert gc.isenabled() and gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 10_000
    assert gc.isenabled() and gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_a_failed_warm_up_still_resumes_collection(tmp_path, monkeypatch):
    from whatsagent import app

    monkeypatch.delenv("WHATSAGENT_GC_THRESHOLDS", raising=False)

    def broken_warm_up(responders) -> None:
        raise RuntimeError("a model's SDK failed to load")

    monkeypatch.setattr(app, "_warm_up", broken_warm_up)
    agent_os = _os(tmp_path)
    async with agent_os.lifespan():
        await agent_os._warmed.wait()
        assert gc.isenabled() and gc.get_threshold() == THRESHOLDS
    assert gc.isenabled()


def test_servers_in_one_process_combine_and_the_last_one_out_puts_the_collector_back():
    from whatsagent.heap import Tuning

    before = gc.get_threshold()
    a, b = Tuning(), Tuning()
    a.pause()
    b.pause()
    b.tune((30000, 40, 60))
    assert not gc.isenabled(), "a is still warming up"
    a.tune((25000, 40, 60))
    assert gc.isenabled() and gc.get_threshold() == (25000, 40, 60)
    a.restore()
    assert gc.isenabled() and gc.get_threshold() == (30000, 40, 60), "b still runs"
    assert gc.get_freeze_count() > 0
    b.restore()
    assert gc.isenabled() and gc.get_threshold() == before and gc.get_freeze_count() == 0
    b.restore()  # twice is harmless
    assert gc.get_threshold() == before


def test_an_application_that_turned_the_collector_off_keeps_it_off():
    from whatsagent.heap import Tuning

    gc.disable()
    try:
        server = Tuning()
        server.pause()
        server.tune(THRESHOLDS)
        assert not gc.isenabled()
        server.restore()
        assert not gc.isenabled()
    finally:
        gc.enable()

"""Wait estimates: from measured talk times and the agents actually available, kept across a restart,
and said honestly."""

from __future__ import annotations

import pytest

from controller.acd.engine import AcdEngine
from controller.acd.estimates import FORGET_AFTER, MAX_TALKS, DurationChanges, Durations, estimate_wait, wait_phrase
from controller.acd.model import AgentSettings, Announce, EscalationStep, QueueSettings
from controller.clock import FakeClock


@pytest.mark.parametrize(("seconds", "zh", "en"), [
    (0, "不到1分钟", "less than a minute"),
    (59.9, "不到1分钟", "less than a minute"),
    (60, "大约1分钟", "about 1 minute"),
    (89, "大约1分钟", "about 1 minute"),
    (90, "大约2分钟", "about 2 minutes"),
    (170, "大约3分钟", "about 3 minutes"),
    (569, "大约9分钟", "about 9 minutes"),
    (600, "大约10分钟", "about 10 minutes"),
    (636, "大约10分钟", "about 10 minutes"),  # 10.6 minutes: to 5 minutes already
    (23 * 60, "大约25分钟", "about 25 minutes"),  # past 10 minutes: to 5 minutes
    (62 * 60, "大约60分钟", "about 60 minutes"),
])
def test_wait_phrases_round_honestly(seconds: float, zh: str, en: str) -> None:
    assert (wait_phrase(seconds, "zh"), wait_phrase(seconds, "en-US")) == (zh, en)


def test_estimate_takes_the_pth_free_agent_then_a_handle_time_per_round() -> None:
    assert estimate_wait(1, [], 100) is None
    assert estimate_wait(1, [30, 5, 60], 100) == 5
    assert estimate_wait(3, [30, 5, 60], 100) == 60
    assert estimate_wait(4, [30, 5, 60], 100) == 105  # the first agent again, a handle time later
    assert estimate_wait(7, [30, 5, 60], 100) == 205


def test_talk_history_forgets_calls_older_than_the_window() -> None:
    history = Durations([(100.0, 60.0), (50.0, 200.0)])
    assert history.mean(150.0, 120) == 130.0
    assert history.mean(170.0, 120) == 130.0  # the call ended at 50 is exactly at the window's edge: in
    assert history.mean(200.0, 120) == 60.0  # now it is out
    assert history.saved() == [[100.0, 60.0]]
    assert history.mean(300.0, 120) is None
    history.add(400.123456, 61.987654)
    assert history.saved() == [[400.123, 61.988]]


def test_talk_history_keeps_the_latest_talks_only() -> None:
    history = Durations([(float(n), 10.0) for n in range(MAX_TALKS)] + [(-1.0, 1000.0)])
    assert len(history.ended) == MAX_TALKS and history.mean(MAX_TALKS, 10_000) == 10.0  # the oldest one left
    history.add(MAX_TALKS + 1.0, 10.0 + MAX_TALKS)
    assert len(history.ended) == MAX_TALKS and history.ended[0][0] == 1.0


def engine(clock: FakeClock, agents: int = 2) -> AcdEngine:
    queue = QueueSettings("q", wrapup_seconds=20, announce_interval=30, no_agents="wait", estimate_window=600)
    people = [AgentSettings(f"a{i}", "", "", f"800{i}", queues={"q": 0}) for i in range(1, agents + 1)]
    return AcdEngine([queue], people, clock)


def test_the_estimate_counts_only_available_agents_and_where_each_is_in_its_call() -> None:
    clock = FakeClock(1000.0)
    acd = engine(clock, agents=3)
    for agent in ("a1", "a2", "a3"):
        acd.login(agent)
    acd.not_ready("a3", "meal")  # logged in, takes no calls: not counted
    for call, agent in (("c1", "a1"), ("c2", "a2")):
        acd.enqueue(call, "q")
        acd.answered(call, agent)
    clock.advance(90)
    acd.call_ended("a1")  # talked 90 s; wrap-up 20 s: free in 20 s
    assert acd.handle_time("q") == 110.0
    clock.advance(10)  # a1 free in 10 s; a2 has talked 100 s of a mean 90: a fifth of that more, then wrap-up
    announced = [d for d in acd.enqueue("w1", "q") + acd.enqueue("w2", "q") + acd.enqueue("w3", "q")
                 if isinstance(d, Announce)]
    assert [(a.position, a.estimated_wait) for a in announced] == [(1, 10.0), (2, 18.0 + 20.0), (3, 120.0)]


def test_talk_times_survive_a_restart_so_the_estimate_does_not_start_over() -> None:
    clock = FakeClock(1000.0)
    acd = engine(clock)
    acd.login("a1")
    acd.login("a2", ready=False)
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    clock.advance(40)
    acd.call_ended("a1")
    acd.not_ready("a1", "meal")
    acd.ready("a2")
    acd.enqueue("c2", "q")
    clock.advance(4)
    acd.answered("c2", "a2")  # rang 4 s
    assert acd.handle_time("q") == 60.0  # 40 s talk + 20 s wrap-up (not the 120 s default)
    again = engine(clock)
    again.restore(acd.snapshot())
    assert again.handle_time("q") == 60.0
    again.ready("a1")  # free now: the wait is the mean ring, (0 + 4) / 2 s
    assert again.estimated_wait("q", 1) == 2.0
    fresh = engine(clock)
    assert fresh.handle_time("q") == 140.0  # without the snapshot: the default talk time
    clock.advance(601)  # the measured call has left the window
    assert again.handle_time("q") == 140.0


def test_an_agent_counts_from_when_the_call_s_escalation_admits_them() -> None:
    """Guards: counting a ready junior as free now for a call only experts may take for 30 s."""
    clock = FakeClock(1000.0)
    steps = (EscalationStep(0, min_level=7), EscalationStep(30, min_level=1))
    queue = QueueSettings("q", skills={"x": 1}, wrapup_seconds=20, announce_interval=30, no_agents="wait",
                          escalation=steps)
    acd = AcdEngine([queue], [AgentSettings(name, "", "", "", skills={"x": level}, queues={"q": 0})
                              for name, level in (("expert", 9), ("junior", 2))], clock)
    acd.login("expert")
    acd.login("junior", ready=False)
    acd.enqueue("c1", "q")
    acd.answered("c1", "expert")  # the expert talks: free in a handle time (120 + 20 s)
    acd.ready("junior")
    clock.advance(5)
    (announced,) = [d for d in acd.enqueue("c2", "q") if isinstance(d, Announce)]
    assert announced.estimated_wait == 30.0  # the junior takes it when the second step comes
    assert acd.estimated_wait("q", 1) == 0.0  # (a position alone: the junior is ready now)
    clock.advance(5)
    assert acd.estimated_wait("q", 1, "c2") == 25.0


def apply(rows: list[tuple[float, float]], history: Durations) -> list[tuple[float, float]]:
    """The store's rows of one queue and kind after writing `history`'s changes as `AcdRecords` does."""
    changes = history.take_changes()
    rows = rows + changes.added
    if changes.forget_before is not None:
        rows = [row for row in rows if row[0] >= changes.forget_before]
    return rows


def test_the_stored_durations_restore_what_is_kept_and_stay_bounded() -> None:
    """A duration added is one row; the forgotten ones are deleted once FORGET_AFTER piled up, or when none is
    left; what a restart restores from the rows is always what is kept here."""
    history = Durations([(3.0, 1.23456), (1.0, 2.0)])
    assert history.take_changes() == DurationChanges([], None)  # restored: stored already
    rows = [(1.0, 2.0), (3.0, 1.235)]
    history.add(4.00049, 2.5)
    assert history.take_changes() == DurationChanges([(4.0, 2.5)], None)  # (rounded as saved)
    assert history.take_changes() == DurationChanges([], None)  # taken: not again
    rows.append((4.0, 2.5))
    most = 0
    for n in range(3 * MAX_TALKS):
        history.add(10.0 + n, n / 7)
        if n % 7 == 0:  # (a batch now and then)
            rows = apply(rows, history)
            most = max(most, len(rows))
            assert Durations(rows).saved() == history.saved()
    history.add(10_000.0, -5.0)  # a clock step back: kept as 0
    rows = apply(rows, history)
    assert Durations(rows).saved() == history.saved() and len(history.saved()) == MAX_TALKS
    assert most <= MAX_TALKS + FORGET_AFTER + 7
    history.forget_before(9_000.0)  # all but the last
    rows = apply(rows, history)
    assert Durations(rows).saved() == history.saved() == [[10_000.0, 0.0]]
    history.forget_before(20_000.0)  # none left: every row goes
    assert apply(rows, history) == [] and history.saved() == []
    few = Durations([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)])
    few.forget_before(2.0)  # one forgotten: its row stays until FORGET_AFTER pile up (restored, forgotten again)
    assert few.take_changes() == DurationChanges([], None)
    restored = Durations([(float(n), 1.0) for n in range(MAX_TALKS + 3)])  # more rows than kept: forgotten too
    restored.forget_before(MAX_TALKS + FORGET_AFTER)
    assert restored.take_changes().forget_before is not None



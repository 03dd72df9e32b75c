"""The API's pure policies: dialing prefixes, the per-token rate limit, recording policy, "served" numbers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.acd.dialing import RateLimiter, number_refusal
from controller.config import DialingSettings
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.state_persistor import CallRecords
from controller.plugins.recordings.services import effective_policy, policy_refusal
from controller.store.db import Store


def test_default_prefixes_allow_domestic_numbers_and_refuse_international_ones() -> None:
    settings = DialingSettings()
    for number in ("13900139000", "02088881234", "4008001234", "95588"):
        assert number_refusal(settings, number) is None, number
    for number in ("0085212345678", "+8613900139000", "2345678", "7001"):
        assert number_refusal(settings, number) is not None, number


def test_the_longest_prefix_decides_and_a_denied_one_wins_a_tie() -> None:
    settings = DialingSettings(allowed_prefixes=["1", "+86", "1900"], denied_prefixes=["19", "+", "1900"])
    assert number_refusal(settings, "13900139000") is None
    assert number_refusal(settings, "+8613900139000") is None  # +86 (3) beats + (1)
    assert "allowed" in (number_refusal(settings, "+4412345678") or "")  # + alone is not allowed
    assert "denied" in (number_refusal(settings, "19912345678") or "")  # 19 (2) beats 1 (1)
    assert "denied" in (number_refusal(settings, "19001234567") or "")  # equal length: denied wins
    assert "allowed" in (number_refusal(settings, "8001") or "")


@pytest.mark.parametrize("prefix", ["", "1a", "++1", "1+"])
def test_a_prefix_that_is_not_digits_is_a_configuration_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="dialing prefixes"):
        DialingSettings(allowed_prefixes=[prefix])


def test_the_rate_limit_counts_per_key_in_a_sliding_window() -> None:
    now = [100.0]
    limiter = RateLimiter(3, 10.0, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(10.0)  # the first one leaves the window in 10 s
    assert limiter.acquire("b") is None  # another token is not held back
    now[0] += 4.0
    assert limiter.acquire("a") == pytest.approx(6.0)  # refused attempts are not counted
    now[0] += 6.0
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]  # all three left the window now
    assert limiter.acquire("a") == pytest.approx(10.0)


@pytest.mark.parametrize(("flow", "queue", "expected"), [
    ("on_demand", None, "on_demand"), ("never", "always", "never"), ("always", "never", "always"),
    ("on_demand", "never", "never"), ("on_demand", "always", "always"), ("on_demand", "on_demand", "on_demand"),
])
def test_the_flow_decides_then_the_queue(flow: str, queue: str | None, expected: str) -> None:
    assert effective_policy(flow, queue) == expected


def test_never_refuses_a_start_and_always_refuses_a_stop_only() -> None:
    assert "never" in (policy_refusal("never", "start") or "")
    assert "always" in (policy_refusal("always", "stop") or "")
    allowed = [("always", "start"), ("always", "pause"), ("always", "resume"), ("never", "stop"),
               ("on_demand", "start"), ("on_demand", "stop")]
    assert [policy_refusal(policy, action) for policy, action in allowed] == [None] * len(allowed)


async def test_a_number_is_served_only_when_the_call_was_answered(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    calls, acd = CallRecords(store, lambda: 1.0), AcdRecords(store, lambda: 1.0)
    # Inbound: rang agent 1001 who did not answer (abandoned), then answered by 1002.
    calls.started("in1", "ch1", direction="inbound", caller="13800138000", did="4008001234")
    acd.enqueued("in1", "general", 0)
    acd.left("in1", "abandoned", 5.0, "1001")
    calls.started("in2", "ch2", direction="inbound", caller="13800138001", did="4008001234")
    acd.enqueued("in2", "general", 0)
    acd.left("in2", "answered", 5.0, "1002")
    # Outbound: 1001 dialled a number that did not answer, and one that did.
    calls.started("out1", "ch3", direction="outbound", caller="", did="13900139000")
    calls.event("out1", "customer_dialled", agent_id="1001", status="NOANSWER")
    calls.started("out2", "ch4", direction="outbound", caller="", did="13900139001")
    calls.event("out2", "customer_dialled", agent_id="1001", status="ANSWER")
    await store.flush()
    served = {(number, agent): await calls.has_served(number, agent)
              for number in ("13800138000", "13800138001", "13900139000", "13900139001")
              for agent in ("1001", "1002")}
    assert served == {("13800138000", "1001"): False, ("13800138000", "1002"): False,
                      ("13800138001", "1001"): False, ("13800138001", "1002"): True,
                      ("13900139000", "1001"): False, ("13900139000", "1002"): False,
                      ("13900139001", "1001"): True, ("13900139001", "1002"): False}
    writer.cancel()
    await store.close()

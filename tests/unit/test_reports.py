"""KPIs from hand-made records (expected values worked out by hand below) and Erlang C against published tables."""

from __future__ import annotations

import json
import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from controller.cli import main as cli
from controller.cli.reports import report_csv, report_table
from controller.reports import erlang
from controller.reports.kpis import AgentStateSpan, AlertFact, CallFact, Standards, compute_report

TZ = ZoneInfo("Asia/Shanghai")


def at(hhmm: str) -> float:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 11, 24, hour, minute, tzinfo=TZ).timestamp()


START, END = at("10:00"), at("11:00")

CALLS = [
    # id, queue, agent, offered, outcome, wait, talk, hold, acw, extras
    CallFact("c1", "general", "A", at("10:05"), "answered", 10, 120, 0, 30, survey_score=5),
    CallFact("c2", "general", "B", at("10:40"), "answered", 30, 240, 40, 70, transfers=1, survey_score=3),
    CallFact("c3", "general", "A", at("10:10"), "answered", 15, 60, 0, 20),
    CallFact("c4", "general", None, at("10:15"), "abandoned", 3),  # a short abandon (< 5 s)
    CallFact("c5", "general", None, at("10:20"), "abandoned", 45),
    CallFact("c6", "general", None, at("10:50"), "overflowed", 60),
    CallFact("c7", "general", "B", at("10:55"), "answered", 5, 100, 10, 50, callback_requested=True,
             callback_completed=True),
    CallFact("c8", None, None, at("10:30"), "ivr_only", 0, callback_requested=True),
    CallFact("c9", "complaints", "A", at("10:35"), "answered", 20, 90, 0, 10, complaint=True),
    CallFact("early", "general", "A", at("09:59"), "answered", 1, 1, 0, 1),  # outside the period
    CallFact("late", "general", "A", at("11:05"), "answered", 1, 1, 0, 1),
]

SPANS = [
    AgentStateSpan("A", "ready", None, at("10:00"), at("10:10")),
    AgentStateSpan("A", "talking", None, at("10:10"), at("10:20")),
    AgentStateSpan("A", "acw", None, at("10:20"), at("10:25")),
    AgentStateSpan("A", "not_ready", "meal", at("10:25"), at("10:45")),
    AgentStateSpan("A", "ready", None, at("10:45"), at("11:30")),  # clipped at 11:00
]


def rows_by(by: str, interval: int | None = None) -> dict[tuple[object, ...], dict[str, object]]:
    rows = compute_report(CALLS, SPANS, start=START, end=END, interval_minutes=interval, by=by,  # type: ignore[arg-type]
                          standards=Standards())
    return {(r.interval_start, r.queue, r.agent_id): r.as_dict() for r in rows}


def test_queue_row_every_figure() -> None:
    general = rows_by("queue")[(None, "general", None)]
    # offered c1..c7 = 7; c4 waited 3 s < 5 s: a short abandon, out of every rate's denominator (6)
    assert (general["offered"], general["short_abandons"], general["abandoned"], general["answered"],
            general["overflowed"]) == (7, 1, 1, 4, 1)
    assert general["answer_rate"] == 0.6667            # 4 / 6
    assert general["abandon_rate"] == 0.1667           # 1 / 6
    assert general["service_level"] == 0.5             # c1 10 s, c3 15 s, c7 5 s within 20 s: 3 / 6
    assert general["asa"] == 15.0                      # (10 + 30 + 15 + 5) / 4
    assert general["att"] == 130.0                     # (120 + 240 + 60 + 100) / 4
    assert general["avg_hold"] == 12.5                 # (0 + 40 + 0 + 10) / 4
    assert general["avg_acw"] == 42.5                  # (30 + 70 + 20 + 50) / 4
    assert general["aht"] == 185.0                     # 130 + 12.5 + 42.5
    assert general["transfer_rate"] == 0.25            # c2 / 4
    assert general["one_stop_rate"] == 0.5             # c1, c3 (c2 transferred, c7 left a callback) / 4
    assert (general["callbacks_requested"], general["callbacks_completed"]) == (1, 1)
    assert general["surveys"] == 2 and general["survey_avg"] == 4.0
    assert general["survey_distribution"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert general["complaint_rate"] == 0.0
    assert general["breaches"] == {"talk": 1, "acw": 1, "hold": 1, "wait": 0}  # all c2


def test_complaints_queue_and_total() -> None:
    complaints = rows_by("queue")[(None, "complaints", None)]
    assert (complaints["offered"], complaints["answered"], complaints["service_level"]) == (1, 1, 1.0)  # 20 s ≤ 20 s
    assert complaints["complaint_rate"] == 1.0
    (total,) = rows_by("total").values()
    assert (total["offered"], total["ivr_only"], total["answered"]) == (8, 1, 5)
    assert total["answer_rate"] == 0.7143              # 5 / (8 − 1)
    assert total["service_level"] == 0.5714            # c1, c3, c7, c9: 4 / 7
    assert total["asa"] == 16.0                        # (10 + 30 + 15 + 5 + 20) / 5
    assert total["complaint_rate"] == 0.1429           # 1 / 7
    assert total["callbacks_requested"] == 2           # c7 and the IVR-only c8


def test_intervals_split_calls_by_when_they_were_offered() -> None:
    rows = rows_by("queue", 30)
    first, second = rows[(at("10:00"), "general", None)], rows[(at("10:30"), "general", None)]
    # 10:00–10:30: c1, c3, c4 (short), c5 → counted 3, answered 2
    assert (first["offered"], first["answered"], first["answer_rate"], first["service_level"]) == (4, 2, 0.6667,
                                                                                                   0.6667)
    # 10:30–11:00: c2 (30 s), c6 (overflowed), c7 (5 s) → counted 3, answered 2, within 20 s 1
    assert (second["offered"], second["answered"], second["overflowed"], second["service_level"]) == (3, 2, 1,
                                                                                                      0.3333)


def test_agent_time_and_occupancy() -> None:
    agent = rows_by("agent")[(None, None, "A")]
    assert agent["answered"] == 3                      # c1, c3, c9 (any queue)
    assert agent["online"] == 3600.0                   # 600 + 600 + 300 + 1200 + 900 (clipped)
    assert agent["ready"] == 1500.0                    # 600 + 900
    assert agent["not_ready_by_reason"] == {"meal": 1200.0}
    assert agent["occupancy"] == 0.375                 # busy 900 / (900 + ready 1500)
    halves = rows_by("agent", 30)
    first, second = halves[(at("10:00"), None, "A")], halves[(at("10:30"), None, "A")]
    assert (first["online"], first["ready"], first["not_ready_by_reason"], first["occupancy"]) == \
        (1800.0, 600.0, {"meal": 300.0}, 0.6)        # busy 900 / (900 + 600)
    assert (second["online"], second["ready"], second["not_ready_by_reason"], second["occupancy"]) == \
        (1800.0, 900.0, {"meal": 900.0}, 0.0)


def test_both_and_empty_denominators() -> None:
    both = rows_by("both")
    assert both[(None, "general", "B")]["answered"] == 2 and both[(None, "complaints", "A")]["answered"] == 1
    empty = compute_report([CallFact("x", "q", None, at("10:01"), "abandoned", 2)], [], start=START, end=END)
    assert empty[0].answer_rate is None and empty[0].asa is None  # only a short abandon: no denominator
    with pytest.raises(ValueError, match="15, 30 or 60"):
        compute_report([], [], start=START, end=END, interval_minutes=20)


def test_alerts_are_counted_in_their_rows() -> None:
    alerts = [AlertFact(at("10:12"), "hold", "general", "A"), AlertFact(at("10:40"), "service_level", "general", None),
              AlertFact(at("10:41"), "acw", None, "B"), AlertFact(at("11:30"), "hold", "general", "A")]  # outside
    by_queue = {r.queue: r.alerts for r in compute_report(CALLS, SPANS, start=START, end=END, by="queue",
                                                           alerts=alerts)}
    assert by_queue["general"] == {"hold": 1, "service_level": 1} and by_queue["complaints"] == {}
    by_agent = {r.agent_id: r.alerts for r in compute_report(CALLS, SPANS, start=START, end=END, by="agent",
                                                              alerts=alerts)}
    assert by_agent["A"] == {"hold": 1} and by_agent["B"] == {"acw": 1}
    (total,) = compute_report(CALLS, SPANS, start=START, end=END, by="total", alerts=alerts)
    assert total.alerts == {"hold": 1, "service_level": 1, "acw": 1}
    halves = compute_report(CALLS, SPANS, start=START, end=END, by="queue", interval_minutes=30, alerts=alerts)
    assert {(r.interval_start, r.queue): r.alerts for r in halves}[(at("10:30"), "general")] == {"service_level": 1}


def test_standards_reject_unknown_keys() -> None:
    assert Standards.from_mapping({"service_level_seconds": 15}).service_level_seconds == 15.0
    with pytest.raises(ValueError, match="unknown key 'service_levle_seconds'"):
        Standards.from_mapping({"service_levle_seconds": 15})


# -- Erlang C ----------------------------------------------------------------------------------------

# Call Centre Helper's Erlang C table: 100 calls in 30 minutes, AHT 180 s (10 erlangs), 80/20.
# agents: (probability of waiting, service level within 20 s, ASA seconds)
PUBLISHED_10_ERLANGS = {11: (0.6821, 0.3896, 122.8), 12: (0.4494, 0.6402, 40.4), 13: (0.2853, 0.7956, 17.1),
                        14: (0.1741, 0.8884, 7.8), 15: (0.1020, 0.9415, 3.7)}


@pytest.mark.parametrize("agents", sorted(PUBLISHED_10_ERLANGS))
def test_erlang_c_matches_the_published_table(agents: int) -> None:
    waiting, level, asa = PUBLISHED_10_ERLANGS[agents]
    result = erlang.achieved(agents, calls=100, aht_seconds=180, interval_minutes=30, answer_within_seconds=20)
    assert result.traffic_erlangs == 10
    assert result.probability_of_waiting == pytest.approx(waiting, abs=5e-5)
    assert result.service_level == pytest.approx(level, abs=5e-5)
    assert result.asa_seconds == pytest.approx(asa, abs=0.05)
    assert result.occupancy == pytest.approx(10 / agents)


def test_erlang_c_large_centre_and_staffing() -> None:
    # Westbay Engineers' worked example: 360 calls per half hour, 240 s, 55 agents, 15 s target.
    result = erlang.achieved(55, calls=360, aht_seconds=240, interval_minutes=30, answer_within_seconds=15)
    assert result.traffic_erlangs == 48
    assert result.probability_of_waiting == pytest.approx(0.2387, abs=5e-5)
    assert result.asa_seconds == pytest.approx(8.2, abs=0.05)
    assert result.service_level == pytest.approx(0.8459, abs=5e-5)
    assert erlang.agents_needed(calls=100, aht_seconds=180).agents == 14  # 13 gives 79.6 % < 80 %
    assert erlang.agents_needed(calls=100, aht_seconds=180, max_occupancy=0.7).agents == 15
    assert erlang.agents_needed(calls=100, aht_seconds=180, target_asa_seconds=5).agents == 15
    assert erlang.scheduled(14, 0.3) == 20
    # 900 agents still compute (the Erlang B recursion does not overflow).
    assert erlang.agents_needed(calls=20000, aht_seconds=180, interval_minutes=60).agents > 1000


def test_erlang_c_too_few_agents_and_bad_input() -> None:
    result = erlang.achieved(10, calls=100, aht_seconds=180)
    assert result.probability_of_waiting == 1 and result.service_level == 0 and math.isinf(result.asa_seconds)
    assert result.as_dict()["asa_seconds"] is None
    with pytest.raises(ValueError):
        erlang.agents_needed(calls=100, aht_seconds=0)
    with pytest.raises(ValueError):
        erlang.agents_needed(calls=100, aht_seconds=180, target_service_level=80)


def test_ccctl_erlang_prints_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["erlang", "--calls", "100", "--aht", "180", "--shrinkage", "30"]) == 0
    out = capsys.readouterr().out
    assert "10.00 erlangs" in out and "needed: 14" in out and "schedule 20" in out and "88.8%" in out
    assert cli.main(["erlang", "--calls", "100", "--aht", "180", "--agents", "12", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["agents"] == 12 and data["service_level"] == 0.6402
    assert cli.main(["erlang", "--calls", "100", "--aht", "180", "--target", "120"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_report_table_and_csv_render_every_row() -> None:
    rows = [r.as_dict() for r in compute_report(CALLS, SPANS, start=START, end=END, by="both")]
    data = {"rows": rows, "start": START, "end": END, "interval_minutes": None, "by": "both"}
    table = report_table(data)
    assert "接通率" in table and "100.0%" in table and "general" in table and "complaints" in table
    csv_text = report_csv(data)
    header, *lines = csv_text.strip().splitlines()
    assert header.startswith("interval_start,queue,agent_id,offered") and len(lines) == len(rows)
    assert '"{""1"": 0' in csv_text  # the survey distribution as a JSON cell

"""The JSON a full-path call encodes and decodes in the controller: the standard library against `controller.jsontext`
(orjson), per call (a second or so, no Asterisk).

What one call of tests/bench/bench_fullpath.py encodes (counted with cProfile, README "Benchmarks", third round,
third session): 15 CTI events (data and envelope), 15 call events, 12 live-call parts, 3.5 changed agents of the
ACD's saved state, 2 talk/ring durations, its offers and its end; it decodes 15 ARI events and 4 ARI answers. The
payloads below have those shapes (a Chinese caller region, an IVR's variables, a screen pop with a last call).

    .venv/bin/python -m tests.bench bench_json
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from controller import jsontext
from tests.bench.bench_ari import EVENT_MIX

REGION = {"description": "江苏省常州市", "province": "江苏省", "city": "常州市", "carrier": "中国移动"}
DATA = {"region": "江苏省常州市", "tier": "gold", "account": "42", "menu": "1"}
_ENVELOPE = {"seq": 123456, "type": "call.ringing", "at": 1764170000.123, "call_id": "c-5f3a9e1b2c4d",
             "agent_id": "1001", "queue": "sales"}
#: (how many per call, payload): what one full-path call encodes.
ENCODES: list[tuple[float, dict[str, Any] | list[Any]]] = [
    # CTI events' data (15.5) and envelopes (15.5)
    (1, {"caller": "13800138000", "did": "4008005100", "direction": "inbound"}),
    (4, {"flow": "main", "node": "menu", "node_type": "menu"}),
    (1, {"flow": "main", "node": "account", "variable": "account", "digits": "42"}),
    (1, {"priority": 0, "position": 1, "estimated_wait": 12.5}),
    (1, {"endpoint": "PJSIP/bench0001", "screen_pop": {
        "caller": "13800138000", "did": "4008005100", "queue": "sales", "region": REGION, "tier": "gold",
        "data": DATA, "history": [{"call_id": "c-1", "direction": "inbound", "started_at": 1764160000.0,
                                   "answered_at": 1764160010.0, "ended_at": 1764160100.0,
                                   "end_reason": "agent_hangup", "flow": "main", "agents": ["1001"],
                                   "queues": ["sales"], "disposition": "已解决", "notes": "客户满意"}]}}),
    (3.5, {"state": "talking", "reason": None, "queue": "sales"}),
    (1, {"wait": 3.2, "ring_seconds": 0.4}),
    (1, {"talk_seconds": 2.1, "queue": "sales"}),
    (1, {"reason": "agent_hangup", "cause": 16, "cause_txt": "Normal Clearing", "duration": 9.8}),
    (1, {"recording": "rec-c-5f3a9e1b2c4d"}),
    (15.5, _ENVELOPE),
    # call events (15)
    (4, {"node": "menu", "type": "menu"}),
    (2, {"text": "sound:welcome"}),
    (3, {"media": ["sound:welcome", "sound:menu"], "state": "done"}),
    (2, {"node": "account", "variable": "account", "value": "42"}),
    (1, {"agent_id": "1001"}),
    (2, {"leg": "agent", "by": "far_end", "cause": 16, "cause_txt": "Normal Clearing"}),
    (1, {"flow": "main", "ended": "queue", "error": None, "visited": ["start", "menu", "account", "queue"]}),
    # live-call parts (12)
    (4, {"channel_id": "1764170000.123", "node": "default", "direction": "inbound", "did": "4008005100",
         "started_at": 1764170000.1, "answered": True, "phase": "ivr", "data": DATA, "recording_policy": None}),
    (4, {"flow": "main", "version": "3f2a", "node": "menu", "attempts": 0, "variables": DATA}),
    (2, {"queue": "sales", "enqueued_at": 1764170003.0, "priority": 0, "skills": {}, "data": DATA,
         "offers": [{"agent_id": "1001", "at": 1764170003.1, "ring_seconds": 0.4, "result": "answered"}],
         "bridge": "b-5f3a", "next_announcement": None}),
    (1, {"legs": [{"agent": "1001", "channel_id": "leg-5f3a", "endpoint": "PJSIP/bench0001", "purpose": "agent",
                   "started_at": 1764170003.1}]}),
    (1, {"queue": "sales", "priority": 0, "skills": {}, "data": DATA, "agent_id": "1001",
         "agent_leg": {"channel_id": "leg-5f3a", "endpoint": "PJSIP/bench0001", "purpose": "agent"},
         "talk_bridge": "t-5f3a", "talk_started": 1764170003.5, "held_since": None, "holding_bridge": None,
         "parties": [], "consult": None, "monitor": None}),
    # the ACD's saved agents (3.5), the talk/ring pairs (2), the offers (1), the call's end data (1)
    (3.5, {"state": "ready", "reason": None, "since": 1764170000.0, "endpoint": "PJSIP/bench0001",
           "logged_in_at": 1764160000.0, "idle_since": 1764170000.0, "calls_answered": 12, "online_before": 0.0,
           "seconds_by_state": {"ready": 3000.5, "talking": 1200.25, "acw": 100.0}, "queue": None,
           "acw_until": None, "answers": [1764160100.123 + 60 * i for i in range(12)]}),
    (2, [1764170003.123, 2.1]),
    (1, [{"agent_id": "1001", "at": 1764170003.1, "ring_seconds": 0.4, "result": "answered"}]),
    (1, DATA),
]
#: What one call decodes: its ARI events (EVENT_MIX's counts, 15) and 4 ARI answers (2 plays, a bridge, an originate).
_ANSWER = '{"id":"pb-1","media_uri":"sound:beep","target_uri":"channel:c1","language":"en","state":"queued"}'
DECODES: list[tuple[float, str]] = [(count, json.dumps(event)) for count, event in EVENT_MIX] + [(4, _ANSWER)]


def stdlib_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def us_per_call(work: Callable[[], None], rounds: int) -> float:
    """Microseconds of this process's CPU per call, best of 5 (the machine is shared)."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            work()
        best = min(best, time.process_time() - started)
    return best * 1e6 / rounds


def one_call(items: list[tuple[float, Any]], codec: Callable[[Any], Any]) -> Callable[[], None]:
    """The work of one call: each payload as many times as a call has it (a half rounds up every other call)."""
    weighted = [(payload, count) for count, payload in items]

    def run() -> None:
        for payload, count in weighted:
            for _ in range(int(count + 0.5)):
                codec(payload)
    return run


def main() -> None:
    rounds = 500
    encodes = sum(int(count + 0.5) for count, _ in ENCODES)
    decodes = sum(int(count + 0.5) for count, _ in DECODES)
    for name, dumps, loads in (("json (stdlib)", stdlib_dumps, json.loads), ("jsontext (orjson)", jsontext.dumps,
                                                                               jsontext.loads)):
        encode = us_per_call(one_call(ENCODES, dumps), rounds)
        decode = us_per_call(one_call(DECODES, loads), rounds)
        print(f"  {name:18} {encodes:4.0f} encodes {encode:6.1f} µs per call ({encode / encodes:4.2f} each);"
              f" {decodes:3.0f} decodes {decode:5.1f} µs per call ({decode / decodes:4.2f} each)")


if __name__ == "__main__":
    main()

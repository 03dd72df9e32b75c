"""One CDR per call, in Asterisk's CDR columns, built from our call record.

Asterisk's own CDRs for calls the controller drives through ARI are split over the caller's
channel, each agent leg and the bridges: billing sees several rows and none says which agent or
queue served the call. `build_cdr()` (pure) makes the one row billing expects from our record:
Asterisk's columns (cdr_csv's Master.csv order, the realtime `cdr` table's names) plus `agent`,
`queue` and `recording`.

- start / answer / end: when the call reached us, when it was answered (the controller picked it
  up, as Asterisk's CDR counts it), when it ended; duration = end - start, billsec = end - answer.
- disposition: ANSWERED when answered, else BUSY / FAILED / NO ANSWER from the hang-up cause.
- agent / queue: the agent who answered and their queue (the last one when it was transferred);
  a call no agent answered has the last queue it waited in. recording: the first recording's file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

#: Asterisk's hang-up causes that make a disposition other than NO ANSWER.
BUSY_CAUSES = {17}
FAILED_CAUSES = {1, 3, 21, 27, 34, 38, 41, 42, 44, 58, 88}


@dataclass(frozen=True, slots=True)
class Cdr:
    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: str
    answer: str
    end: str
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str
    userfield: str
    agent: str
    queue: str
    recording: str

    @staticmethod
    def columns() -> list[str]:
        return [f.name for f in fields(Cdr)]

    def values(self) -> tuple[Any, ...]:
        return astuple(self)


def cdr_time(epoch: float | None) -> str:
    """Asterisk's CDR time format (local time); empty when it did not happen."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch is not None else ""


def build_cdr(call: Mapping[str, Any], visits: Sequence[Mapping[str, Any]],
              recordings: Sequence[Mapping[str, Any]], agent_endpoints: Mapping[str, str],
              *, channel_tech: str = "PJSIP") -> Cdr:
    """`call`: the `calls` row; `visits`: its `queue_calls` rows in order; `recordings`: its recordings."""
    started, answered = float(call["started_at"]), call.get("answered_at")
    ended = float(call["ended_at"] if call.get("ended_at") is not None else started)
    served = [visit for visit in visits if visit.get("agent_id") and visit.get("outcome") == "answered"]
    last = served[-1] if served else (visits[-1] if visits else None)
    agent = str(last.get("agent_id") or "") if last else ""
    queue = str(last["queue"]) if last else ""
    endpoint = agent_endpoints.get(agent, "")
    cause = call.get("hangup_cause")
    if answered is not None:
        disposition = "ANSWERED"
    elif cause in BUSY_CAUSES:
        disposition = "BUSY"
    elif cause in FAILED_CAUSES:
        disposition = "FAILED"
    else:
        disposition = "NO ANSWER"
    caller = str(call.get("caller") or "")
    return Cdr(
        accountcode="", src=caller, dst=str(call.get("did") or ""), dcontext=str(call.get("flow") or ""),
        clid=f'"" <{caller}>' if caller else "", channel=str(call.get("channel_id") or ""),
        dstchannel=f"{channel_tech}/{endpoint}" if endpoint else "",
        lastapp="Queue" if visits else "Stasis", lastdata=queue,
        start=cdr_time(started), answer=cdr_time(answered), end=cdr_time(ended),
        duration=max(0, round(ended - started)),
        billsec=max(0, round(ended - float(answered))) if answered is not None else 0,
        disposition=disposition, amaflags="DOCUMENTATION", uniqueid=str(call["call_id"]),
        userfield=str(call.get("end_reason") or ""), agent=agent, queue=queue,
        recording=str(recordings[0]["file"]) if recordings else "")

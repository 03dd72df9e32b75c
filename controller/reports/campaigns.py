"""Outbound campaigns' figures (pure arithmetic: no I/O), for the wallboard and `ccctl report`.

Definitions (README "Outbound campaigns", reports):

- **dialed**: attempts placed (one `campaign_attempts` row each); **answered**: attempts whose customer
  answered (connected to an agent, or abandoned: answered with no agent for them); **connected**: answered
  and talked to an agent (outcome `answered`); **abandoned**: outcome `abandoned`;
- **abandon rate**: abandoned / answered (the pacing engine's definition, its cap's);
- **contact rate**: contacts reached (an attempt that reached the customer: connected to an agent, or an
  IVR-only call completed, transferred or hung up by them, or a message left on their machine:
  `REACHED_OUTCOMES`) / contacts dialled at least once;
- **attempts per contact**: dialed / contacts dialled at least once;
- **results**: contacts by final result: the agent's disposition when there is one, else the contact's
  status (`done`, `failed:<last outcome>`, `dnc`, or still open: `pending`, `retry`, `dialing`);
- **talk time**: per connected attempt, from the agent's leg joining the customer to the call's end (the
  call records); total and average over the connected attempts.

Each attempt and each contact is counted once, whatever the number of rows about it elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.outbound.campaign import REACHED_OUTCOMES

#: A contact's statuses while it may still be dialled.
OPEN_STATUSES = ("pending", "retry", "dialing")


@dataclass(frozen=True)
class AttemptFact:
    contact_no: int
    outcome: str | None  # None: in flight
    answered: bool  # the customer answered (connected or abandoned)
    talk_seconds: float = 0.0


@dataclass(frozen=True)
class ContactFact:
    contact_no: int
    status: str
    last_outcome: str | None = None
    disposition: str | None = None


@dataclass
class Tally:
    """Attempts counted as they start and end: the live figures (wallboard), kept by the runner and rebuilt
    from the store's attempts at start (`from_attempts`)."""

    dialed: int = 0
    answered: int = 0
    connected: int = 0
    abandoned: int = 0
    in_flight: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)

    def started(self) -> None:
        self.dialed += 1
        self.in_flight += 1

    def ended(self, outcome: str, answered: bool) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.by_outcome[outcome] = self.by_outcome.get(outcome, 0) + 1
        self.answered += answered or outcome in ("answered", "abandoned")
        self.connected += outcome == "answered"
        self.abandoned += outcome == "abandoned"

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    @classmethod
    def from_attempts(cls, attempts: Iterable[AttemptFact]) -> Tally:
        tally = cls()
        for attempt in attempts:
            tally.started()
            if attempt.outcome is not None:
                tally.ended(attempt.outcome, attempt.answered)
        return tally


def live_figures(tally: Tally) -> dict[str, Any]:
    """The wallboard's figures of a campaign (`GET /api/campaigns`: each one's `stats`)."""
    return {"dialed": tally.dialed, "answered": tally.answered, "connected": tally.connected,
            "abandoned": tally.abandoned, "abandon_rate": round(tally.abandon_rate, 4), "in_flight": tally.in_flight}


@dataclass(frozen=True)
class CampaignReport:
    campaign: str
    contacts: int
    contacts_dialled: int
    contacts_reached: int
    contacts_left: int
    dialed: int
    answered: int
    connected: int
    abandoned: int
    in_flight: int
    contact_rate: float | None
    abandon_rate: float | None
    attempts_per_contact: float | None
    talk_seconds: float
    avg_talk_seconds: float | None
    by_outcome: dict[str, int]
    results: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def result_of(contact: ContactFact) -> str:
    """A contact's result: its disposition, else its status (a failed one with its last outcome)."""
    if contact.disposition:
        return contact.disposition
    if contact.status == "failed" and contact.last_outcome:
        return f"failed:{contact.last_outcome}"
    return contact.status


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def campaign_report(campaign: str, contacts: Iterable[ContactFact], attempts: Iterable[AttemptFact]) -> CampaignReport:
    """The figures of one campaign from its contacts and attempts (see the module's definitions)."""
    contact_list = list(contacts)
    attempt_list = list(attempts)
    tally = Tally.from_attempts(attempt_list)
    dialled = {a.contact_no for a in attempt_list}
    reached = {a.contact_no for a in attempt_list if a.outcome in REACHED_OUTCOMES}
    talks = [a.talk_seconds for a in attempt_list if a.outcome == "answered"]
    results: dict[str, int] = {}
    for contact in contact_list:
        key = result_of(contact)
        results[key] = results.get(key, 0) + 1
    return CampaignReport(
        campaign=campaign, contacts=len(contact_list), contacts_dialled=len(dialled), contacts_reached=len(reached),
        contacts_left=sum(1 for c in contact_list if c.status in OPEN_STATUSES),
        dialed=tally.dialed, answered=tally.answered, connected=tally.connected, abandoned=tally.abandoned,
        in_flight=tally.in_flight, contact_rate=_ratio(len(reached), len(dialled)),
        abandon_rate=_ratio(tally.abandoned, tally.answered),
        attempts_per_contact=_ratio(tally.dialed, len(dialled)), talk_seconds=round(sum(talks), 1),
        avg_talk_seconds=round(sum(talks) / len(talks), 1) if talks else None,
        by_outcome=dict(sorted(tally.by_outcome.items())), results=dict(sorted(results.items())))

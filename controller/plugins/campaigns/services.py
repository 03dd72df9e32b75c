"""Outbound campaigns on the real Asterisk (README "Outbound campaigns"): the runner.

Each running campaign has a pacing engine (`controller.outbound.pacing`). Every TICK_SECONDS the runner
tells it which of the campaign's agents are ready in the ACD (blending: an agent serving inbound calls,
or not ready, is not; inbound callers waiting for these agents are served first), places the dials it
plans, and reports back what Asterisk says:

- a dial takes the next due contact that may be called now: on no do-not-call list (global, the
  campaign's), within its calling hours (the callee's local time, holidays; `controller.outbound.campaign`);
  a contact on a list is closed as `dnc` and never dialled, one outside its hours waits for the next opening;
- progressive: the agent is reserved in the ACD (busy on an outbound call, offered no queue call) while their
  customer is dialled through the trunk (`asterisk.trunk_dial`) with the campaign's ring limit;
- the customer answers: the agent's phone rings, the CTI event `campaign.connecting` carries the screen pop
  (the contact's name, number and custom fields), and they are bridged until one hangs up; then the agent
  has the campaign's wrap-up and the contact is `done` (an agent's disposition may reopen it: callback, or
  close it and add the number to the campaign's do-not-call list);
- busy, no answer (the ring limit), rejected, failed: the contact is retried after the campaign's delay for
  that outcome, up to `max_attempts`; then it is `failed` with its last outcome.
- predictive: the agent is chosen when the customer answers; with nobody free the customer hears a short
  message and the attempt counts as abandoned (retried after the `abandoned` delay).

Every transition is written to the store (campaign_contacts, campaign_attempts); a restarted controller
reloads the campaigns and closes the attempts that were in flight (`restart.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.acd.engine import AcdError
from controller.ari.errors import AriError
from controller.clock import Clock
from controller.ids import unique_hex
from controller.ivr.port import CallerHangup, Prompt
from controller.logs import mask_number
from controller.media.tts import TtsError
from controller.outbound.campaign import (
    DISPOSITIONS,
    REACHED_OUTCOMES,
    CampaignSettings,
    calling_refusal,
    next_calling_time,
    parse_settings,
    retry_due,
)
from controller.outbound.contacts import ImportResult, normalise, parse_csv
from controller.outbound.dialing import campaign_number_refusal
from controller.outbound.pacing import MODES, Abandon, Connect, Dial, IvrOnly, PacingEngine
from controller.plugins.calls.legs import Leg
from controller.plugins.calls.session import DIAL_OUTCOME_BY_CAUSE, CallSession
from controller.plugins.campaigns.amd import AnsweringMachines
from controller.plugins.campaigns.errors import CampaignError
from controller.plugins.campaigns.ivr_only import IvrOnlyCalls
from controller.plugins.campaigns.notifier import CampaignNotifier
from controller.plugins.campaigns.preview import PreviewDesk
from controller.plugins.campaigns.restart import INTERRUPTED, close_in_flight
from controller.plugins.campaigns.state_persistor import CampaignRecords
from controller.reports.campaigns import AttemptFact, Tally, live_figures
from controller.store.db import StoreUnavailable

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService
    from controller.plugins.ivr.services import IvrService

__all__ = ["Campaign", "CampaignError", "CampaignService", "ContactState"]

log = logging.getLogger("controller.campaigns")

TICK_SECONDS = 0.5
OPEN = ("pending", "retry", "dialing", "previewing")
#: The statuses a campaign can be set to from the API, and from which.
TRANSITIONS = {"start": ({"draft", "paused", "stopped"}, "running"), "pause": ({"running"}, "paused"),
               "stop": ({"running", "paused", "draft"}, "stopped")}
#: Modes the runner places calls for on the real Asterisk (preview: preview.py, IVR-only: ivr_only.py).
RUNNABLE_MODES = MODES
ABANDON_MESSAGE = ("您好，我们稍后再给您来电，再见。", "Hello, we will call you again later. Goodbye.")


@dataclass
class ContactState:
    no: int
    number: str  # E.164
    name: str
    region: str
    zones: list[str]
    fields: dict[str, str]
    status: str = "pending"
    attempts: int = 0
    next_at: float | None = None
    last_outcome: str | None = None
    disposition: str | None = None

    def screen_pop(self, campaign: str) -> dict[str, Any]:
        return {"campaign": campaign, "contact_no": self.no, "number": self.number, "name": self.name,
                **{f"field_{k}": v for k, v in self.fields.items()}, "fields": dict(self.fields)}

    def view(self) -> dict[str, Any]:
        return {"contact_no": self.no, "number": self.number, "name": self.name, "status": self.status,
                "attempts": self.attempts, "next_at": self.next_at, "last_outcome": self.last_outcome,
                "disposition": self.disposition, "fields": self.fields}


@dataclass
class Attempt:
    dial: Dial
    contact: ContactState
    call_id: str
    agent_id: str | None
    started_at: float
    answered: bool = False


@dataclass
class Campaign:
    settings: CampaignSettings
    status: str
    pacing: PacingEngine
    contacts: dict[int, ContactState] = field(default_factory=dict)
    attempts: dict[str, Attempt] = field(default_factory=dict)  # call id -> the attempt in flight
    holding: dict[str, str] = field(default_factory=dict)  # agent -> call id: reserved or talking for us
    tally: Tally = field(default_factory=Tally)  # attempts' figures since the campaign began (the store's)

    @property
    def name(self) -> str:
        return self.settings.name


class CampaignService:
    def __init__(self, *, acd: AcdService, records: CampaignRecords, clock: Clock,
                 spawn: Callable[[Coroutine[Any, Any, None]], Any] | None = None) -> None:
        self.acd = acd
        self.records = records
        self.clock = clock
        self.notify = CampaignNotifier(acd.publish)
        self.campaigns: dict[str, Campaign] = {}
        self.dnc: dict[str, set[str]] = {"": set()}  # campaign ('' global) -> numbers
        self._spawn = spawn
        self._tasks: set[asyncio.Task[None]] = set()
        # Whether the trunk's Asterisk node is connected and its calls reconciled (the application wires it).
        self.dial_ready: Callable[[], bool] = lambda: True
        self.ivr: IvrService | None = None  # runs IVR-only campaigns' flows (set by the app)
        self.preview = PreviewDesk(self)
        self.ivr_only = IvrOnlyCalls(self)
        self.machines = AnsweringMachines(self)

    # -- setting up -----------------------------------------------------------------------------------

    async def load(self) -> None:
        """The campaigns of the store (a restart: the attempts that were in flight are due again now)."""
        for row in await self.records.dnc():
            self.dnc.setdefault(row["campaign"], set()).add(row["number"])
        for row in await self.records.campaigns():
            settings = parse_settings(row["settings"])
            campaign = Campaign(settings, row["status"], PacingEngine(settings.pacing(), self.clock))
            for item in await self.records.contacts(settings.name):
                contact = ContactState(item["contact_no"], item["number"], item["name"], item["region"],
                                       item["zones"], item["fields"], item["status"], item["attempts"],
                                       item["next_at"], item["last_outcome"], item["disposition"])
                campaign.contacts[contact.no] = contact
            attempts = await self.records.attempts(settings.name)
            closed, changed = close_in_flight(settings, campaign.contacts, attempts, self.clock.now())
            for call_id in closed:
                self.records.attempt_ended(call_id, INTERRUPTED, self.clock.now())
                log.warning("campaign %s: attempt %s was in flight at the restart: interrupted", settings.name,
                            call_id)
            for contact_no in changed:
                self._save(campaign, campaign.contacts[contact_no])
            campaign.tally = Tally.from_attempts(
                AttemptFact(a["contact_no"], a["outcome"] or (INTERRUPTED if a["ended_at"] is None else None),
                            a["answered_at"] is not None) for a in attempts)
            self.campaigns[settings.name] = campaign

    async def create(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            settings = parse_settings(data)
        except ValueError as exc:
            raise CampaignError(str(exc), 400) from exc
        if settings.name in self.campaigns:
            raise CampaignError(f"campaign {settings.name} exists")
        unknown = [a for a in settings.agents if a not in self.acd.agent_configs]
        if unknown:
            raise CampaignError(f"agents: no agent {', '.join(unknown)}", 400)
        await self.records.save_campaign(settings.name, settings.as_dict(), "draft", self.clock.now())
        self.campaigns[settings.name] = Campaign(settings, "draft", PacingEngine(settings.pacing(), self.clock))
        self.notify.status(settings.name, "draft")
        return self.view(settings.name)

    def campaign(self, name: str) -> Campaign:
        if name not in self.campaigns:
            raise CampaignError(f"no campaign {name}", 404)
        return self.campaigns[name]

    async def import_csv(self, name: str, text: str) -> dict[str, Any]:
        campaign = self.campaign(name)
        if campaign.status not in ("draft", "paused", "stopped", "running"):
            raise CampaignError(f"campaign {name} is {campaign.status}")
        try:
            result: ImportResult = parse_csv(text, campaign.settings.region,
                                             known=[c.number for c in campaign.contacts.values()])
        except ValueError as exc:
            raise CampaignError(str(exc), 400) from exc
        first = max(campaign.contacts, default=0) + 1
        await self.records.add_contacts(name, first, result.contacts, self.clock.now())
        for index, contact in enumerate(result.contacts):
            campaign.contacts[first + index] = ContactState(first + index, contact.number, contact.name,
                                                            contact.region, list(contact.zones), contact.fields)
        log.info("campaign %s: %d contacts imported, %d invalid, %d duplicates", name, len(result.contacts),
                 len(result.invalid), len(result.duplicates))
        return result.summary()

    async def add_dnc(self, numbers: list[str], campaign: str = "", reason: str = "") -> list[str]:
        """Numbers (normalised in the campaign's region, CN for the global list) onto a do-not-call list."""
        region = self.campaign(campaign).settings.region if campaign else "CN"
        normalised = []
        for number in numbers:
            try:
                normalised.append(normalise(number, region)[0])
            except ValueError as exc:
                raise CampaignError(f"{number!r}: {exc}", 400) from exc
        await self.records.add_dnc(normalised, campaign, reason, self.clock.now())
        self.dnc.setdefault(campaign, set()).update(normalised)
        return normalised

    async def change(self, name: str, action: str) -> dict[str, Any]:
        campaign = self.campaign(name)
        allowed, status = TRANSITIONS[action]
        if campaign.status not in allowed:
            raise CampaignError(f"campaign {name} is {campaign.status}: cannot {action} it")
        if action == "start" and campaign.settings.mode not in RUNNABLE_MODES:
            raise CampaignError(f"{campaign.settings.mode} campaigns are not run on Asterisk yet (only "
                                f"{' and '.join(RUNNABLE_MODES)})", 422)
        if action == "start" and self.acd.originate is None:
            raise CampaignError("outbound calls are not available", 503)
        if action == "start":
            self.ivr_only.check_flow(campaign)
        campaign.status = status
        await self.records.save_campaign(name, campaign.settings.as_dict(), status, self.clock.now())
        if status != "running":
            self.preview.withdraw(campaign, f"campaign {status}")
            for agent_id, call_id in list(campaign.holding.items()):  # reserved, not dialled yet: nothing
                if call_id not in campaign.attempts:
                    campaign.holding.pop(agent_id)
        self.notify.status(name, status)
        log.info("campaign %s %s", name, status)
        return self.view(name)

    async def disposition(self, name: str, contact_no: int, disposition: str, *, retry_at: float | None = None,
                          by: str = "") -> dict[str, Any]:
        """An agent's disposition after the call: `callback` reopens the contact (at `retry_at`, or after the
        callback delay), `do_not_call` closes it and adds the number to the campaign's list."""
        campaign = self.campaign(name)
        contact = campaign.contacts.get(contact_no)
        if contact is None:
            raise CampaignError(f"no contact {contact_no} in campaign {name}", 404)
        if disposition not in DISPOSITIONS:
            raise CampaignError(f"disposition: one of {', '.join(DISPOSITIONS)}", 400)
        if contact.status == "dialing":
            raise CampaignError("the contact's call is still going on")
        contact.disposition = disposition
        if disposition == "callback":
            contact.status = "retry"
            contact.next_at = retry_at if retry_at is not None else (
                self.clock.now() + campaign.settings.retry_seconds["callback"])
        elif disposition == "do_not_call":
            contact.status, contact.next_at = "dnc", None
            await self.add_dnc([contact.number], name, f"customer's request ({by})" if by else "customer's request")
        else:
            contact.status, contact.next_at = "done", None
        self._save(campaign, contact)
        return contact.view()

    # -- views ----------------------------------------------------------------------------------------

    def view(self, name: str) -> dict[str, Any]:
        campaign = self.campaign(name)
        return {"name": name, "status": campaign.status, "settings": campaign.settings.as_dict(),
                "stats": self.stats(name)}

    def stats(self, name: str) -> dict[str, Any]:
        campaign = self.campaign(name)
        by_status: dict[str, int] = {}
        for contact in campaign.contacts.values():
            by_status[contact.status] = by_status.get(contact.status, 0) + 1
        pacing, tally = campaign.pacing.stats(), campaign.tally
        return {"contacts": len(campaign.contacts), "by_status": by_status,
                "left": sum(by_status.get(s, 0) for s in OPEN), **live_figures(tally),
                "abandon_rate_window": round(pacing.abandon_rate, 4), "answer_rate": round(pacing.answer_rate, 4),
                "lines": pacing.lines, "agents": len(campaign.settings.agents), "agents_ready": pacing.ready_agents,
                "agents_busy": len(campaign.holding)}

    # -- the runner -----------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            for campaign in list(self.campaigns.values()):
                if campaign.status == "running":
                    try:
                        self.tick(campaign)
                    except Exception:  # one campaign's bug must not stop the others
                        log.exception("campaign %s: tick failed", campaign.name)
            await asyncio.sleep(TICK_SECONDS)

    def tick(self, campaign: Campaign) -> None:
        if not self.dial_ready():
            return  # Asterisk not (re)connected and reconciled yet: the reconciliation would take a dial for lost
        self._sync_agents(campaign)
        self.preview.check_agents(campaign)
        for dial in campaign.pacing.plan():
            contact = self._next_contact(campaign)
            if contact is None:
                campaign.pacing.cancel(dial.id)
            elif campaign.settings.mode == "preview":
                self.preview.offer(campaign, dial, contact)
            else:
                self._start(campaign, dial, contact)
        if not campaign.attempts and not any(c.status in OPEN for c in campaign.contacts.values()) and \
                campaign.contacts:
            campaign.status = "finished"
            self._background(self.records.save_campaign(campaign.name, campaign.settings.as_dict(), "finished",
                                                        self.clock.now()))
            self.notify.status(campaign.name, "finished")
            log.info("campaign %s finished", campaign.name)

    def _sync_agents(self, campaign: Campaign) -> None:
        """Tell the pacing engine which agents it may use now (blending: only the ready ones, inbound first)."""
        queues: set[str] = set()
        for agent_id in campaign.settings.agents:
            config = self.acd.agent_configs.get(agent_id)
            if config is None:
                campaign.pacing.agent_away(agent_id)
                continue
            queues.update(config.queues)
            if agent_id in campaign.holding:
                continue  # ours: the pacing engine follows it through the attempt
            try:
                view = self.acd.engine.agent(agent_id)
            except AcdError:  # removed from the ACD live
                campaign.pacing.agent_away(agent_id)
                continue
            if view.state == "ready" and view.current_call is None:
                campaign.pacing.agent_ready(agent_id)
            else:
                campaign.pacing.agent_away(agent_id)
        campaign.pacing.inbound_waiting = sum(q.waiting for q in self.acd.engine.queues() if q.name in queues)

    def _next_contact(self, campaign: Campaign) -> ContactState | None:
        """The next due contact that may be called now (DNC closed, out-of-hours ones put off)."""
        now = self.clock.now()
        due = sorted((c for c in campaign.contacts.values()
                      if c.status in ("pending", "retry") and (c.next_at is None or c.next_at <= now)),
                     key=lambda c: (c.next_at or 0.0, c.no))
        for contact in due:
            if contact.number in self.dnc.get("", set()) or contact.number in self.dnc.get(campaign.name, set()):
                contact.status, contact.last_outcome, contact.next_at = "dnc", "do_not_call", None
                self._save(campaign, contact)
                log.info("campaign %s: contact %d is on a do-not-call list: not dialled", campaign.name, contact.no)
                continue
            if campaign_number_refusal(self.acd.config.dialing, contact.number, campaign.settings.region)[1]:
                contact.status, contact.last_outcome, contact.next_at = "failed", "not_allowed", None
                self._save(campaign, contact)
                log.info("campaign %s: contact %d: the dialing policy refuses the number (dialing.allowed_prefixes"
                         "/denied_prefixes): not dialled", campaign.name, contact.no)
                continue
            refusal = calling_refusal(campaign.settings, now, contact.zones, contact.region)
            if refusal is not None:
                contact.next_at = next_calling_time(campaign.settings, now, contact.zones, contact.region)
                if contact.next_at is None:
                    contact.status, contact.last_outcome = "failed", "outside_dates"
                self._save(campaign, contact)
                continue
            return contact
        return None

    def place(self, campaign: Campaign, dial: Dial, contact: ContactState) -> str | None:
        """Dial `contact` now (the call id; None when the ACD refused the reserved agent)."""
        self._start(campaign, dial, contact)
        attempt = next((a for a in campaign.attempts.values() if a.dial.id == dial.id), None)
        return attempt.call_id if attempt is not None else None

    def _start(self, campaign: Campaign, dial: Dial, contact: ContactState) -> None:
        call_id = unique_hex()
        if dial.agent_id is not None:
            try:  # reserved: busy on this outbound call in the ACD, offered no queue call
                self.acd.apply(self.acd.engine.outbound(dial.agent_id, call_id,
                                                        wrapup_seconds=campaign.settings.wrapup_seconds))
            except AcdError:
                campaign.pacing.cancel(dial.id)
                campaign.pacing.agent_away(dial.agent_id)
                return
            campaign.holding[dial.agent_id] = call_id
        now = self.clock.now()
        contact.status, contact.next_at = "dialing", None
        contact.attempts += 1
        attempt = Attempt(dial, contact, call_id, dial.agent_id, now)
        campaign.attempts[call_id] = attempt
        campaign.tally.started()
        self._save(campaign, contact)
        self.records.attempt_started(campaign.name, contact.no, call_id, dial.agent_id, now)
        self.notify.dialing(campaign.name, call_id, contact.no, contact.attempts, dial.agent_id)
        log.info("campaign %s: dialling contact %d (%s), attempt %d", campaign.name, contact.no,
                 mask_number(contact.number), contact.attempts)
        self._background(self._originate(campaign, attempt))

    async def _originate(self, campaign: Campaign, attempt: Attempt) -> None:
        assert self.acd.originate is not None
        settings = campaign.settings
        try:  # the attempt's row is in the store before its call exists (a restart finds every call placed)
            await self.records.flush()
        except StoreUnavailable as exc:
            log.warning("campaign %s: not dialling contact %d: %s", campaign.name, attempt.contact.no, exc)
            self._ended(campaign, attempt, "failed")
            return
        dialled, _ = campaign_number_refusal(self.acd.config.dialing, attempt.contact.number, settings.region)
        try:
            await self.acd.originate(
                self.acd.config.asterisk.trunk_dial.replace("{number}", dialled),
                did=attempt.contact.number, caller_id=settings.caller_id or self.acd.config.acd.outbound_caller_id
                or None, timeout=settings.ring_seconds, call_id=attempt.call_id,
                handler=lambda session: self._answered(campaign, attempt, session),
                on_failed=lambda cause: self._ended(campaign, attempt, DIAL_OUTCOME_BY_CAUSE.get(cause or 0, "failed")))
        except AriError as exc:
            log.warning("campaign %s: cannot dial contact %d: %s", campaign.name, attempt.contact.no, exc.message)
            self._ended(campaign, attempt, "failed")

    async def _answered(self, campaign: Campaign, attempt: Attempt, session: CallSession) -> None:
        session.answered = True
        session.records.answered(session.call_id)
        session.data.update({"campaign": campaign.name, "contact_no": attempt.contact.no})
        if campaign.settings.amd != "off" and not await self.machines.screen(campaign, attempt, session):
            return  # an answering machine, handled (or the customer hung up during the detection)
        attempt.answered = True
        decision = campaign.pacing.answered(attempt.dial.id)
        if isinstance(decision, IvrOnly):
            await self.ivr_only.serve(campaign, attempt, session)
            return
        if isinstance(decision, Connect) and decision.agent_id not in campaign.holding:
            try:  # predictive: the agent is taken now
                self.acd.apply(self.acd.engine.outbound(decision.agent_id, attempt.call_id,
                                                        wrapup_seconds=campaign.settings.wrapup_seconds))
                campaign.holding[decision.agent_id] = attempt.call_id
            except AcdError:
                campaign.pacing.finished(decision.agent_id)
                campaign.pacing.agent_away(decision.agent_id)
                decision = Abandon()
        if not isinstance(decision, Connect):
            await self._abandon(campaign, attempt, session)
            return
        agent_id = attempt.agent_id = decision.agent_id
        self.records.attempt_answered(attempt.call_id, agent_id, self.clock.now())
        outcome = "agent_no_answer"
        endpoint = self.acd.engine.agent(agent_id).endpoint or self.acd.agent_configs[agent_id].endpoint
        leg = Leg(session, self.acd.config.asterisk.phone_dial.replace("{endpoint}", endpoint), purpose="agent",
                  caller_id=attempt.contact.number, ring_timeout=20.0)
        self.notify.connecting(campaign.name, attempt.call_id, agent_id, attempt.contact.screen_pop(campaign.name))
        try:
            dialled = await leg.dial()
            if dialled.answered:
                outcome = "answered"
                session.caller = attempt.contact.number  # (the channel shows our caller id): screen pops, transfers
                # As an inbound call: hold, transfers, conference, recording… (README "Call control on outbound calls")
                await self.acd.call_control.serve_outbound(session, agent_id, leg, on_agent_done=lambda _: (
                    self._agent_done(campaign, agent_id, attempt.call_id)))
        except CallerHangup:
            pass
        finally:
            self._agent_done(campaign, agent_id, attempt.call_id)
            self._ended(campaign, attempt, "answered" if outcome == "answered" else "abandoned")
            await leg.hangup()
            await session.hangup()

    async def _abandon(self, campaign: Campaign, attempt: Attempt, session: CallSession) -> None:
        """No agent for an answered customer: the short message, then hang up; retried later."""
        try:
            zh, en = ABANDON_MESSAGE
            media = await self.acd.media_for(Prompt("tts", zh if campaign.settings.region == "CN" else en,
                                                    "zh" if campaign.settings.region == "CN" else "en"))
            await session.play([media])
        except (TtsError, AriError, CallerHangup) as exc:
            log.info("campaign %s: abandon message not played: %s", campaign.name, exc)
        finally:
            if attempt.agent_id is not None:
                self._release(campaign, attempt.agent_id, attempt.call_id)
            self._ended(campaign, attempt, "abandoned")
            await session.hangup()

    def _agent_done(self, campaign: Campaign, agent_id: str, call_id: str) -> None:
        """The agent's part of an answered customer's call is over (they hung up, or transferred the customer to
        someone else): free for the pacing engine and the ACD at once, whoever the customer is still with."""
        if campaign.holding.get(agent_id) == call_id:
            campaign.pacing.finished(agent_id)
        self._release(campaign, agent_id, call_id)

    def _release(self, campaign: Campaign, agent_id: str, call_id: str) -> None:
        """The agent's part is over: the ACD's wrap-up, then ready (once per call)."""
        if campaign.holding.get(agent_id) == call_id:
            campaign.holding.pop(agent_id)
        if self.acd.engine.agent(agent_id).current_call == call_id:
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.call_ended(agent_id))

    def _ended(self, campaign: Campaign, attempt: Attempt, outcome: str) -> None:
        """An attempt is over: the contact is done, retried later, or failed."""
        if campaign.attempts.pop(attempt.call_id, None) is None:
            return  # reported already
        if not attempt.answered:
            campaign.pacing.not_answered(attempt.dial.id)
            if attempt.agent_id is not None:
                self._release(campaign, attempt.agent_id, attempt.call_id)
        now = self.clock.now()
        contact = campaign.contacts[attempt.contact.no]
        contact.last_outcome = outcome
        if outcome in REACHED_OUTCOMES:
            contact.status, contact.next_at = "done", None
        else:
            due = retry_due(campaign.settings, now, outcome, contact.attempts)
            contact.status, contact.next_at = ("retry", due) if due is not None else ("failed", None)
        self._save(campaign, contact)
        campaign.tally.ended(outcome, attempt.answered)
        self.records.attempt_ended(attempt.call_id, outcome, now)
        self.notify.attempt_ended(campaign.name, attempt.call_id, contact.no, outcome, contact.status,
                                  contact.next_at, attempt.agent_id)
        log.info("campaign %s: contact %d attempt %d: %s -> %s", campaign.name, contact.no, contact.attempts,
                 outcome, contact.status)

    def save_contact(self, campaign: Campaign, contact: ContactState) -> None:
        self._save(campaign, contact)

    def end_attempt(self, campaign: Campaign, attempt: Attempt, outcome: str) -> None:
        self._ended(campaign, attempt, outcome)

    def _save(self, campaign: Campaign, contact: ContactState) -> None:
        self.records.save_contact(campaign.name, contact.no, status=contact.status, attempts=contact.attempts,
                                  next_at=contact.next_at, last_outcome=contact.last_outcome,
                                  disposition=contact.disposition, at=self.clock.now())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        if self._spawn is not None:
            self._spawn(work)
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

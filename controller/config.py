"""The controller's configuration file (YAML). See demo/controller.yaml for a commented example.

Every section has safe defaults: everything listens on loopback, nothing is exposed. Secrets
(ARI/AMI passwords, API tokens) can come from the environment with `${VAR}`.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from controller.reports.kpis import Standards
from controller.settings import INTERNAL, SettingsError, load_file_as, require_positive
from controller.workdays import parse_hours

DEFAULT_NODE = "default"  # the name of the one node of a configuration without `nodes`
Role = Literal["agent", "supervisor", "admin", "integration"]
MIN_TOKEN_LENGTH = 24  # e.g. `openssl rand -hex 16` gives 32
USER_NAME_PATTERN = r"[A-Za-z0-9._-]{1,64}"
AGENT_ID_PATTERN = r"[A-Za-z0-9._-]{1,64}"
ENDPOINT_PATTERN = r"[A-Za-z0-9._/-]{1,80}"


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088/ari"
    user: str = "ccc"
    password: str = ""
    app: str = "ccc"  # the Stasis application name the dialplan hands calls to
    request_timeout: float = 5.0
    pool_size: int = 50  # REST connections; + the WebSocket's session (8 at most): below http.conf sessionlimit (100)

    def __post_init__(self) -> None:
        require_positive(self, "request_timeout", "pool_size")


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "ccc"
    secret: str = ""


@dataclass(frozen=True)
class NodeSettings:
    """One Asterisk server of several (README "Several Asterisk servers"). Agents' phones on it are named
    `<name>/<endpoint>`; the other nodes reach it over SIP at `sip_address` through the PJSIP trunk
    `ccc-node-<name>` (`ccctl asterisk-conf nodes` writes it)."""

    name: str
    ari: AriSettings = field(default_factory=AriSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    sip_address: str = "127.0.0.1:5060"  # host:port the other nodes send the trunk's INVITEs to

    def __post_init__(self) -> None:
        if not re.fullmatch(NODE_NAME_PATTERN, self.name):
            raise ValueError(f"nodes: name {self.name!r}: letters, digits, '-' and '_' (at most 32)")


NODE_NAME_PATTERN = r"[A-Za-z0-9_-]{1,32}"


@dataclass(frozen=True)
class GuardSettings:
    """The guard (`ccc-guard`, README "Restarts and upgrades"): when no controller owns the ARI
    application for `takeover_timeout` seconds, it moves waiting and IVR callers to the fallback route."""

    takeover_timeout: float = 30.0
    check_interval: float = 1.0  # how often it asks the controller's /healthz
    # Its own AMI user: write permission `call` only (Redirect, Setvar), nothing to read.
    ami_user: str = "ccc-guard"
    ami_secret: str = ""
    # Its own ARI user, read-only (ari.conf `read_only = yes`): it only lists channels and bridges.
    # Empty: the controller's `ari.user` / `ari.password`.
    ari_user: str = ""
    ari_password: str = ""
    # The controller's health URL; empty: http://<http.listen>:<http.port>/healthz of this file.
    controller_url: str = ""

    def __post_init__(self) -> None:
        require_positive(self, "takeover_timeout", "check_interval")
        if self.check_interval > self.takeover_timeout:
            raise ValueError("check_interval: must not be longer than takeover_timeout")


@dataclass(frozen=True)
class AgiSettings:
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 4573
    # Who may connect: addresses or networks (CIDR). Others are closed at once, unread.
    allowed_peers: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    max_connections: int = 200  # each /ivr hand-over holds one for the whole call
    header_timeout: float = 5.0  # for the AGI request header
    command_timeout: float = 10.0  # for Asterisk's answer to one command
    handover_timeout: float = 4 * 3600.0  # the longest a call handed over by /ivr may stay with the controller

    def __post_init__(self) -> None:
        require_positive(self, "max_connections", "header_timeout", "command_timeout", "handover_timeout")
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(f"allowed_peers: {peer!r} is not an IP address or network") from None


@dataclass(frozen=True)
class CustomerSettings:
    # Where the customer tier comes from: a URL template answering {"tier": "vip"} for {number}.
    tier_url: str = ""
    timeout: float = 2.0
    default_tier: str = "regular"

    def __post_init__(self) -> None:
        require_positive(self, "timeout")


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1"
    port: int = 8080
    # HTTPS: a PEM certificate (chain) and its key. Both set: the API, the pages and /ws are served over
    # TLS only, and session cookies are `Secure`. SIGHUP reads both files again (certificate renewal).
    tls_cert: str = ""
    tls_key: str = ""

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key: give both (HTTPS) or neither (HTTP)")

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


@dataclass(frozen=True)
class AsteriskSettings:
    # Asterisk's sounds directory as the controller sees it: rendered prompts go to <sounds_dir>/ccc/.
    sounds_dir: str = "/usr/share/asterisk/sounds"
    # Where Asterisk writes recordings (ARI's recording directory), as the controller sees it.
    recordings_dir: str = "/var/spool/asterisk/recording"
    # Call recordings older than this many days are deleted by the controller (0: kept forever).
    recordings_retention_days: float = 0.0
    fallback_context: str = "ccc-fallback"  # where calls go when the controller cannot keep them
    trunk_dial: str = "PJSIP/{number}@loopback-trunk"  # how to reach an external number
    phone_dial: str = "PJSIP/{endpoint}"  # how to ring an agent's phone
    moh_class: str = "default"


@dataclass(frozen=True)
class LoggingSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    # Callers' numbers are masked in logs (138****8000) unless this is set for troubleshooting.
    show_caller_numbers: bool = False


@dataclass(frozen=True)
class TokenSettings:
    name: str
    token: str
    role: Role
    agent_id: str | None = None  # for role agent: the agent this token acts as

    def __post_init__(self) -> None:
        if self.role == "agent" and not self.agent_id:
            raise ValueError(f"token {self.name!r}: an agent token needs agent_id (the agent it acts as)")


@dataclass(frozen=True)
class UserSettings:
    """A person who logs in to the pages with a name and password (README "Users and roles"). Read only to
    seed an empty database; afterwards users are managed through the API."""

    name: str
    password: str
    role: Literal["agent", "supervisor", "admin"]
    agent_id: str | None = None  # for role agent: the agent this user is

    def __post_init__(self) -> None:
        if not re.fullmatch(USER_NAME_PATTERN, self.name):
            raise ValueError(f"user {self.name!r}: a name is 1-64 letters, digits, '.', '_' or '-'")
        if self.role == "agent" and not self.agent_id:
            raise ValueError(f"user {self.name!r}: an agent user needs agent_id (the agent it is)")


@dataclass(frozen=True)
class AuthSettings:
    """Logins to the pages (README "Users and roles")."""

    session_hours: float = 12.0  # a session cookie is valid this long after the login
    # A session not used for this long ends (its next request gets 401, its WebSockets are closed); every
    # request extends it. 0: sessions end only after session_hours.
    idle_minutes: float = 30.0
    max_failures: int = 5  # wrong passwords in a row before the account is locked
    lockout_seconds: float = 900.0  # how long a locked account refuses every login
    min_password_length: int = 10

    def __post_init__(self) -> None:
        require_positive(self, "session_hours", "max_failures", "lockout_seconds", "min_password_length")
        if self.idle_minutes < 0:
            raise ValueError(f"idle_minutes: expected 0 (no idle timeout) or more, got {self.idle_minutes!r}")


@dataclass(frozen=True)
class WebhookSettings:
    name: str
    url: str
    secret: str  # HMAC-SHA256 key; the receiver checks X-CCC-Signature with it
    types: list[str] = field(default_factory=list)  # event type patterns, e.g. ["call.*"]; empty: all
    queue: str | None = None
    timeout: float = 5.0
    # Tries of an event the receiver refuses (a 4xx other than 408/429) before it becomes a dead
    # letter and the webhook moves on; 5xx and network errors are retried for as long as it takes.
    max_attempts: int = 5

    def __post_init__(self) -> None:
        require_positive(self, "timeout", "max_attempts")
        if self.max_attempts > 100:
            raise ValueError(f"max_attempts: expected at most 100, got {self.max_attempts}")


@dataclass(frozen=True)
class DialingSettings:
    """Numbers agents and integrations may dial through the API (click-to-dial, and transfer, conference
    and consultation to `number:`), and how often (see README "Dialing limits")."""

    # A number may be dialled when its longest matching prefix is an allowed one (a denied prefix of
    # the same length wins). The defaults: mainland China numbers (mobiles 1…, landlines 0…, 400/800
    # service numbers, 95… short numbers), no international calls (00…, +…).
    allowed_prefixes: list[str] = field(default_factory=lambda: ["0", "1", "400", "800", "95"])
    denied_prefixes: list[str] = field(default_factory=lambda: ["00", "+"])
    # Per API token: at most `rate_limit_calls` dials in any `rate_limit_seconds` (then 429, Retry-After).
    rate_limit_calls: int = 10
    rate_limit_seconds: float = 60.0

    def __post_init__(self) -> None:
        require_positive(self, "rate_limit_calls", "rate_limit_seconds")
        for prefix in (*self.allowed_prefixes, *self.denied_prefixes):
            if not re.fullmatch(r"\+?[0-9]*", prefix) or not prefix:
                raise ValueError(f"dialing prefixes are digits (optionally after +), got {prefix!r}")


@dataclass(frozen=True)
class IvrSettings:
    flows_dir: str = "ivr_flows"
    # What a call hears when no flow serves its DID, and what happens next: the dialplan's
    # fallback route (agents ring, then voicemail), or a hang-up (an announcement-only number).
    default_greeting: str = "sound:ccc/welcome"
    no_flow: Literal["fallback", "hangup"] = "fallback"


def require_skill_levels(skills: dict[str, int]) -> None:
    """Skill levels go from 1 to 10, as in the IVR flows' queue nodes (a __post_init__ check)."""
    for skill, level in skills.items():
        if not 1 <= level <= 10:
            raise ValueError(f"skills.{skill}: expected a level from 1 to 10, got {level!r}")


OVERFLOW_TARGET_PATTERN = r"(queue|node):[A-Za-z0-9._-]+|voicemail|callback"


@dataclass(frozen=True)
class EscalationStepConfig:
    """One step of a queue's timed relaxation (README "Routing"): from `after` seconds of a call's wait,
    who may take it; or, with `overflow`, where the call goes instead."""

    after: float
    min_level: int | None = None  # every required skill at this level or above (None: as configured)
    max_penalty: int | None = None  # only agents serving the queue at this penalty or lower (None: all)
    overflow: str | None = None  # queue:NAME | voicemail | callback | node:ID: the call leaves the queue

    def __post_init__(self) -> None:
        if not 0 <= self.after <= 86_400:
            raise ValueError(f"after: expected seconds from 0 to 86400, got {self.after!r}")
        if self.min_level is not None and not 1 <= self.min_level <= 10:
            raise ValueError(f"min_level: expected a skill level from 1 to 10, got {self.min_level!r}")
        if self.max_penalty is not None and self.max_penalty < 0:
            raise ValueError(f"max_penalty: expected a penalty of 0 or more, got {self.max_penalty!r}")
        if self.overflow is not None:
            if not re.fullmatch(OVERFLOW_TARGET_PATTERN, self.overflow):
                raise ValueError(f"overflow: expected queue:NAME, node:ID, voicemail or callback,"
                                 f" got {self.overflow!r}")
            if self.min_level is not None or self.max_penalty is not None:
                raise ValueError("overflow: a step that overflows the call has no min_level or max_penalty")


@dataclass(frozen=True)
class AcdQueueConfig:
    """One ACD queue (see README "ACD"); the routing engine gets these as `QueueSettings`."""

    name: str
    strategy: Literal["longest_idle", "fewest_calls", "round_robin", "skills", "ring_all",
                      "weighted_idle"] = "longest_idle"
    skills: dict[str, int] = field(default_factory=dict)  # required skill -> minimum level (1-10)
    wrapup_seconds: float = 60.0  # after-call work (ACW) after each call; 0: ready at once
    ring_timeout: float = 15.0  # ring an agent this long, then RONA
    max_wait: float = 600.0  # then the overflow target
    overflow: str | None = None  # queue:NAME | voicemail | callback | node:ID (None: the flow decides)
    announce_interval: float = 30.0  # position / wait announcements (0: music only)
    announce_wait_time: bool = True
    announce_agent_number: bool = True  # "工号 1001 为您服务" before the bridge
    moh_class: str = ""  # the music on hold its callers hear (musiconhold.conf); empty: `asterisk.moh_class`
    service_level_seconds: float = 20.0
    no_agents: Literal["wait", "overflow"] = "overflow"  # when nobody serving the queue is logged in
    priority_aging_seconds: float = 60.0  # one priority level per this many seconds waited
    recording: Literal["always", "never", "on_demand"] = "on_demand"
    title: str = ""  # shown on the wallboard
    category: Literal["", "inquiry", "billing", "order", "complaint", "suggestion", "sales"] = ""  # for reports
    # Timed relaxation (README "Routing"): steps by `after` seconds waited, the first at 0.
    escalation: list[EscalationStepConfig] = field(default_factory=list)
    fewest_calls_window: float = 3600.0  # `fewest_calls` counts each agent's answers this far back (seconds)
    estimate_window: float = 1800.0  # wait estimates use the talk times of calls ended this far back (seconds)
    # Callbacks (README "Callbacks"): virtual hold is offered once the estimated wait reaches
    # `callback_offer_after` seconds (0: never); the caller's place stays in the queue.
    callback_offer_after: float = 0.0
    callback_order: Literal["agent_first", "customer_first"] = "agent_first"
    callback_retries: int = 2  # more attempts after a busy / unanswered / failed one
    callback_retry_seconds: float = 300.0  # between attempts
    callback_caller_id: str = ""  # the number the customer sees (else acd.outbound_caller_id)
    business_hours: str = "09:00-18:00"  # scheduled callbacks are due within these, on working days

    def __post_init__(self) -> None:
        require_skill_levels(self.skills)
        # Names are in URLs, reports and app_queue's `|`-separated queue_log: letters (Chinese too), digits, . _ -
        if not re.fullmatch(r"[\w.-]{1,64}", self.name):
            raise ValueError(f"name: expected 1-64 letters, digits, '.', '_' or '-', got {self.name!r}")
        require_positive(self, "fewest_calls_window", "estimate_window")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{0,80}", self.moh_class):
            raise ValueError(f"moh_class: expected a musiconhold.conf class (letters, digits, '.', '_', '-'),"
                             f" got {self.moh_class!r}")
        if self.callback_retries < 0 or self.callback_retry_seconds < 0 or self.callback_offer_after < 0:
            raise ValueError(f"queue {self.name}: callback_* settings must not be negative")
        parse_hours(self.business_hours)
        steps = [step for step in self.escalation if step is not None]  # None: a step with its own problem
        if steps and steps[0].after != 0:
            raise ValueError(f"escalation: the first step is the rule from the start (after: 0), got after:"
                             f" {steps[0].after:g}")
        for earlier, later in itertools.pairwise(steps):
            if later.after <= earlier.after:
                raise ValueError(f"escalation: steps go in order of `after`, each later than the one before"
                                 f" ({later.after:g} s after {earlier.after:g} s)")
            if earlier.overflow is not None:
                raise ValueError(f"escalation: the step after: {earlier.after:g} overflows the call, so it must be"
                                 f" the last")


@dataclass(frozen=True)
class AcdAgentConfig:
    id: str
    name: str
    number: str  # the agent's number (工号) announced to callers
    endpoint: str  # the agent's usual phone (PJSIP endpoint); `agent login --phone` can change it
    skills: dict[str, int] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)  # queue -> penalty (0 first)
    caller_id: str = ""  # the number customers see on this agent's outbound calls (else acd.outbound_caller_id)
    enabled: bool = True  # false: kept in the configuration but gets no calls and cannot log in

    def __post_init__(self) -> None:
        # The id is in URLs and the number is said digit by digit; the endpoint and caller id go into dial
        # strings, where a stray `&` or `,` would dial something else: each is checked for what it is.
        if not re.fullmatch(AGENT_ID_PATTERN, self.id):
            raise ValueError(f"id: expected 1-64 letters, digits, '.', '_' or '-', got {self.id!r}")
        if not re.fullmatch(r"[0-9]{1,16}", self.number):
            raise ValueError(f"number: expected the agent's number (工号), 1-16 digits, got {self.number!r}")
        if not re.fullmatch(ENDPOINT_PATTERN, self.endpoint):
            raise ValueError(f"endpoint: expected a PJSIP endpoint name (letters, digits, '.', '_', '-', '/'), "
                             f"got {self.endpoint!r}")
        if self.caller_id and not re.fullmatch(r"\+?[0-9]{1,20}", self.caller_id):
            raise ValueError(f"caller_id: expected a number (digits, optionally after +), got {self.caller_id!r}")
        require_skill_levels(self.skills)


#: The ring timeouts of agents' outbound calls (acd.outbound_*_ring_seconds): a phone rung for less than 5 s
#: is hardly heard, one rung for minutes is a line kept busy.
MIN_RING_SECONDS, MAX_RING_SECONDS = 5.0, 120.0


@dataclass(frozen=True)
class AcdSettings:
    queues: list[AcdQueueConfig] = field(default_factory=list)
    agents: list[AcdAgentConfig] = field(default_factory=list)
    not_ready_reasons: list[str] = field(
        default_factory=lambda: ["meal", "meeting", "training", "restroom", "helping", "no_answer", "login"])
    center_name: str = ""  # said in the agent-number announcement
    outbound_caller_id: str = ""  # the number customers see on agents' outbound calls (e.g. the hotline)
    # Agents' outbound calls (click-to-dial, dialled on the phone) are checked against `dialing:`;
    # after-call work after each one (0: back as before the call).
    outbound_wrapup_seconds: float = 0.0
    # How long click-to-dial rings the agent's phone, and how long the customer's phone rings on click-to-dial
    # and on numbers dialled on a phone; centers hang up after 6 unanswered rings, about 30 s.
    outbound_agent_ring_seconds: float = 30.0
    outbound_customer_ring_seconds: float = 30.0
    # Standard recordings an agent plays to the caller on command (name -> text to speak, or sound:NAME).
    standard_prompts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("outbound_agent_ring_seconds", "outbound_customer_ring_seconds"):
            seconds = getattr(self, name)
            if not MIN_RING_SECONDS <= seconds <= MAX_RING_SECONDS:
                raise ValueError(f"{name}: expected {MIN_RING_SECONDS:g} to {MAX_RING_SECONDS:g} seconds (30 s is about"
                                 f" 6 rings), got {seconds!r}")
        names = {queue.name for queue in self.queues if queue is not None}
        for queue in self.queues:
            for step in (queue.escalation if queue is not None else []):
                if step is None:
                    continue
                target = (step.overflow or "").removeprefix("queue:")
                if step.overflow and step.overflow.startswith("queue:") and target not in names:
                    raise ValueError(f"queues: {queue.name}: escalation step after: {step.after:g} overflows to"
                                     f" unknown queue {target!r}")
                if target == queue.name:
                    raise ValueError(f"queues: {queue.name}: escalation step after: {step.after:g} overflows to"
                                     f" the queue itself")


@dataclass(frozen=True)
class WfmSettings:
    """Forecasting, staffing and adherence (README "Forecasting and staffing", "Schedules and adherence")."""

    interval_minutes: int = 30  # the plan's interval: 15, 30 or 60
    history_days: int = 56  # forecasts learn from this many days before the first forecast day
    holdout_days: int = 7  # accuracy (MAPE): the model refitted without these last days forecasts them
    holidays: str = "CN"  # the holiday calendar's country (ISO code, `holidays` library); "" for none
    shrinkage: float = 0.3  # share of paid time off the phones (breaks, training, absence)
    patience_seconds: dict[str, float] = field(default_factory=dict)  # queue -> callers' mean patience: Erlang A
    default_aht_seconds: float = 180.0  # handle time forecast for a queue with no answered call yet
    adherence_grace_seconds: float = 300.0  # a state differing from the schedule this long is out of adherence

    def __post_init__(self) -> None:
        if self.interval_minutes not in (15, 30, 60):
            raise ValueError(f"interval_minutes: expected 15, 30 or 60, got {self.interval_minutes!r}")
        if not 1 <= self.history_days <= 3660 or not 0 <= self.holdout_days < self.history_days:
            raise ValueError("history_days: 1 to 3660; holdout_days: 0 to fewer than history_days")
        if not 0 <= self.shrinkage < 1:
            raise ValueError(f"shrinkage: expected a fraction from 0 to below 1 (e.g. 0.3), got {self.shrinkage!r}")
        if any(not 0 < value <= 86400 for value in self.patience_seconds.values()):
            raise ValueError("patience_seconds: each queue's mean patience is from 0 (excluded) to 86400 seconds")
        if not 0 < self.default_aht_seconds <= 86400 or not 0 <= self.adherence_grace_seconds <= 86400:
            raise ValueError("default_aht_seconds: 0 (excluded) to 86400; adherence_grace_seconds: 0 to 86400")


@dataclass(frozen=True)
class StoreSettings:
    """Where the records are kept. Empty `url`: the SQLite file in data_dir (the default, one box).
    A `postgresql://user@host:port/database` URL: PostgreSQL (README "Deploying with PostgreSQL"),
    the password from `password` (e.g. `${CCC_STORE_PASSWORD}`) or libpq's own PGPASSWORD / ~/.pgpass."""

    url: str = ""
    password: str = ""
    connect_timeout: float = 5.0  # seconds to reach the server (each try; a failed try is retried)
    statement_timeout: float = 30.0  # seconds a statement (or a lock it waits for) may take on the server

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("postgresql://", "postgres://")):
            raise ValueError("url: expected a postgresql://user@host:port/database URL, or empty for SQLite"
                             " in data_dir")
        for name in ("connect_timeout", "statement_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"{name}: expected seconds from 0 to 3600, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class LeadershipSettings:
    """Active/standby controllers on one PostgreSQL store (README "Active/standby controllers"): one leads
    (a lease in the database, renewed every `renew_interval`), the others wait. Unused with SQLite."""

    # Off: one controller, as with SQLite (it keeps serving calls while PostgreSQL is down). On: a controller
    # that cannot renew its lease stops acting, so that a standby can take over without a split brain.
    enabled: bool = False
    lease_seconds: float = 3.0  # a leader that cannot renew for this long is replaced
    renew_interval: float = 0.5  # how often the leader renews and a standby looks at the lease
    # Where this controller's API is reached, shown by the standbys (empty: http(s)://<host name>:<http.port>).
    advertise_url: str = ""
    node_name: str = ""  # names this controller in the lease and in PostgreSQL (empty: the host name)

    def __post_init__(self) -> None:
        if not 0.05 <= self.renew_interval <= 60:
            raise ValueError(f"renew_interval: expected seconds from 0.05 to 60, got {self.renew_interval!r}")
        if not 3 * self.renew_interval <= self.lease_seconds <= 600:
            raise ValueError(f"lease_seconds: expected at least 3 x renew_interval and at most 600 seconds,"
                             f" got {self.lease_seconds!r}")
        if self.advertise_url and not self.advertise_url.startswith(("http://", "https://")):
            raise ValueError("advertise_url: expected an http:// or https:// URL")
        if len(self.node_name) > 24 or any(not (c.isalnum() or c in "-_.") for c in self.node_name):
            raise ValueError("node_name: expected at most 24 letters, digits, '-', '_' or '.'")


@dataclass(frozen=True)
class RetentionSettings:
    """How long records are kept, in days (0: forever); an hourly job deletes older ones in small chunks.
    See README "Data retention". Call recordings have their own `asterisk.recordings_retention_days`."""

    calls_days: float = 400.0  # ended calls, their dispositions and queue visits (reports, caller history)
    call_events_days: float = 400.0  # what happened during each call
    agent_states_days: float = 400.0  # agents' state changes (each agent's latest one is always kept)
    cti_events_days: float = 30.0  # the CTI stream (an event a webhook has not yet delivered is kept)
    tts_cache_days: float = 7.0  # rendered text-to-speech WAVs not played for this long
    audit_days: float = 730.0  # the audit log: who changed what (README "Audit log")
    messages_days: float = 400.0  # internal messages between agents and supervisors (README "Supervisor console")
    chunk_rows: int = 500  # rows deleted per commit, so the job never holds the writer long

    def __post_init__(self) -> None:
        for name in ("calls_days", "call_events_days", "agent_states_days", "cti_events_days", "tts_cache_days",
                     "audit_days", "messages_days"):
            value = getattr(self, name)
            if not 0 <= value <= 36500:
                raise ValueError(f"{name}: expected a number of days from 0 (keep forever) to 36500, got {value!r}")
        if not 1 <= self.chunk_rows <= 10_000:
            raise ValueError(f"chunk_rows: expected an integer from 1 to 10000, got {self.chunk_rows!r}")


@dataclass(frozen=True)
class InboxSettings:
    """Voicemail as work and follow-up tasks (README "Voicemail inbox", "Follow-up tasks")."""

    # app_voicemail's mailbox of the fallback route as the controller sees it (voicemail.conf [ccc] hotline):
    # its messages are imported into the inbox (and removed from the mailbox) while the controller runs.
    fallback_mailbox_dir: str = "/var/spool/asterisk/voicemail/ccc/hotline"
    fallback_queue: str = ""  # the queue whose inbox gets fallback messages ("": supervisors only)
    default_queue: str = ""  # a flow's message left outside any queue visit, with no `queue:` on its node
    poll_seconds: float = 2.0  # how often new messages are imported and task reminders checked
    retention_days: float = 0.0  # messages' audio and rows older than this are deleted (0: kept forever)
    timezone: str = "Asia/Shanghai"  # working days and "one working day later" are counted here
    task_due_working_days: int = 1  # a task's default due time: this many working days later (domain.md)
    task_reminder_minutes: float = 60.0  # task.reminder this long before the due time (0: none)

    def __post_init__(self) -> None:
        if not 0.1 <= self.poll_seconds <= 3600:
            raise ValueError(f"poll_seconds: expected 0.1 to 3600, got {self.poll_seconds!r}")
        if not 0 <= self.retention_days <= 36500:
            raise ValueError(f"retention_days: expected 0 (keep forever) to 36500, got {self.retention_days!r}")
        if not 0 <= self.task_due_working_days <= 30:
            raise ValueError(f"task_due_working_days: expected 0 to 30, got {self.task_due_working_days!r}")
        if not 0 <= self.task_reminder_minutes <= 10080:
            raise ValueError(f"task_reminder_minutes: expected 0 to 10080, got {self.task_reminder_minutes!r}")


@dataclass(frozen=True)
class QueueLogSettings:
    """app_queue's queue_log, written by the controller (see README "Existing Asterisk tools")."""

    enabled: bool = False
    file: str = "queue_log"  # relative to data_dir; "" writes only the table
    table: bool = True  # also the realtime `queue_log` table in the store (time, callid, ..., data1..data5)
    agent_format: str = "Agent/{id}"  # how agents are named in the log ({id})
    log_caller_id: bool = True  # ENTERQUEUE's caller number, as app_queue logs it

    def __post_init__(self) -> None:
        try:
            self.agent_format.format(id="1001")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"agent_format: only {{id}} may be used, got {self.agent_format!r}") from exc
        if "|" in self.agent_format.format(id=""):
            raise ValueError("agent_format: may not contain '|' (the field separator)")
        if self.enabled and not self.file and not self.table:
            raise ValueError("queue_log: enabled with neither a file nor the table: nothing would be written")


@dataclass(frozen=True)
class CdrSettings:
    """One CDR per call, in Asterisk's CDR columns (Master.csv and the `cdr` table)."""

    enabled: bool = False
    csv: str = "cdr/Master.csv"  # relative to data_dir; "" writes only the table
    table: bool = True

    def __post_init__(self) -> None:
        if self.enabled and not self.csv and not self.table:
            raise ValueError("cdr: enabled with neither a CSV file nor the table: nothing would be written")


@dataclass(frozen=True)
class CompatSettings:
    queue_log: QueueLogSettings = field(default_factory=QueueLogSettings)
    cdr: CdrSettings = field(default_factory=CdrSettings)
    # app_queue's AMI events (QueueCallerJoin, AgentConnect, ...) for AMI wallboards, on this port
    # (0: off). Loopback only unless ami_listen says otherwise; logins use ami_users.
    ami_port: int = 0
    ami_listen: str = "127.0.0.1"
    ami_users: dict[str, str] = field(default_factory=dict)  # username -> secret

    def __post_init__(self) -> None:
        if not 0 <= self.ami_port <= 65535:
            raise ValueError(f"ami_port: expected 0-65535, got {self.ami_port}")
        if self.ami_port and not self.ami_users:
            raise ValueError("ami_port: set ami_users (username: secret) so wallboards can log in")


@dataclass(frozen=True)
class SoftphoneSettings:
    """The browser phone (README "Browser phone (WebRTC)"): each agent's WebRTC endpoint on Asterisk and
    how the toolbar reaches it. The per-agent SIP password is derived from `secret` (HMAC), so the
    controller and the rendered pjsip configuration agree without storing a password anywhere."""

    enabled: bool = False
    websocket_url: str = ""  # Asterisk's SIP WebSocket as the browser reaches it: wss://pbx.example.cn:8089/ws
    sip_domain: str = ""  # the host of the agents' SIP URIs (default: the WebSocket URL's host)
    endpoint: str = "webrtc-{agent}"  # the agent's WebRTC endpoint name ({agent}: the agent id)
    supervisor_endpoint: str = "webrtc-sup-{user}"  # a supervisor's or admin's ({user}: the user name)
    secret: str = ""  # HMAC key for the per-agent SIP passwords; at least 16 characters
    ice_servers: list[str] = field(default_factory=list)  # stun:/turn: URLs for the browser (README: NAT)
    turn_username: str = ""
    turn_password: str = ""
    # Where the controller keeps Asterisk's pjsip_webrtc.conf (as the controller sees the file, e.g.
    # /etc/asterisk/pjsip_webrtc.conf with Asterisk on this machine): rewritten and res_pjsip reloaded
    # through ARI whenever the agents change. "": the controller leaves the file alone (render it yourself).
    pjsip_conf: str = ""

    def __post_init__(self) -> None:
        if "{agent}" not in self.endpoint:
            raise ValueError(f"endpoint: must contain {{agent}}, got {self.endpoint!r}")
        if "{user}" not in self.supervisor_endpoint:
            raise ValueError(f"supervisor_endpoint: must contain {{user}}, got {self.supervisor_endpoint!r}")
        if self.enabled and not self.websocket_url.startswith(("ws://", "wss://")):
            raise ValueError(f"websocket_url: expected ws://… or wss://…, got {self.websocket_url!r}")
        if self.enabled and len(self.secret) < 16:
            raise ValueError("secret: at least 16 characters (it derives every agent's SIP password)")


@dataclass(frozen=True)
class FaxSettings:
    """Faxes as work: received by a flow's `fax` node into a queue's inbox, sent from the API (README "Fax")."""

    # Asterisk's fax spool as the controller sees it; the dialplan (dialplans/ccc-fax.conf) uses
    # /var/spool/asterisk/ccc-fax inside Asterisk: in/ (ReceiveFAX's TIFFs) and out/ (SendFAX's TIFF-F).
    spool_dir: str = "/var/spool/asterisk/ccc-fax"
    max_document_bytes: int = 512 * 1024  # an uploaded PDF (sent base64 in JSON: the API takes 1 MiB requests)
    max_pages: int = 30  # a PDF to send with more pages is refused
    convert_timeout_seconds: float = 60.0  # tiff2pdf / ghostscript are stopped after this long
    ring_timeout_seconds: int = 45  # the far end must answer within this
    send_timeout_seconds: float = 900.0  # a send still going after this long is hung up and failed
    caller_id: str = ""  # the caller id faxes are sent with ("": the trunk's)

    def __post_init__(self) -> None:
        require_positive(self, "max_document_bytes", "max_pages", "convert_timeout_seconds", "ring_timeout_seconds",
                         "send_timeout_seconds")


@dataclass(frozen=True)
class Config:
    data_dir: str = "./var"
    ari: AriSettings = field(default_factory=AriSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    # Several Asterisk servers under this controller; empty: one node, "default", from `ari` and `ami`.
    nodes: list[NodeSettings] = field(default_factory=list)
    guard: GuardSettings = field(default_factory=GuardSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    customers: CustomerSettings = field(default_factory=CustomerSettings)
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    # DID -> flow id; overrides the `dids` the flows declare themselves (a DID named here goes to this
    # flow whichever flow lists it). A flow that does not exist is an error when the flows load.
    dids: dict[str, str] = field(default_factory=dict)
    tokens: list[TokenSettings] = field(default_factory=list)  # seeds an empty database (README "API tokens")
    users: list[UserSettings] = field(default_factory=list)  # seeds an empty database (README "Users and roles")
    auth: AuthSettings = field(default_factory=AuthSettings)
    acd: AcdSettings = field(default_factory=AcdSettings)
    # Service standards (alerts, reports): seconds >= 0, service_level_target a fraction from 0 to 1.
    standards: Standards = field(default_factory=Standards)
    webhooks: list[WebhookSettings] = field(default_factory=list)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    store: StoreSettings = field(default_factory=StoreSettings)  # SQLite in data_dir, or PostgreSQL
    leadership: LeadershipSettings = field(default_factory=LeadershipSettings)  # active/standby (PostgreSQL)
    # The loopback demo (make run, the tests): allows the well-known demo tokens. demo/controller.yaml
    # reads it from CCC_DEMO, so a copy of that file refuses to start with them anywhere else.
    demo: bool = False
    dialing: DialingSettings = field(default_factory=DialingSettings)
    compat: CompatSettings = field(default_factory=CompatSettings)  # queue_log, CDRs, AMI events
    wfm: WfmSettings = field(default_factory=WfmSettings)  # forecasting, staffing, schedules and adherence
    softphone: SoftphoneSettings = field(default_factory=SoftphoneSettings)  # the browser phone (WebRTC)
    inbox: InboxSettings = field(default_factory=InboxSettings)  # voicemail inbox, follow-up tasks
    fax: FaxSettings = field(default_factory=FaxSettings)  # receiving and sending faxes

    source: str = field(default="", metadata=INTERNAL)  # the file it was read from (set by `load_config`)

    def __post_init__(self) -> None:
        nodes = [node for node in self.nodes if isinstance(node, NodeSettings)]  # (a bad one is reported already)
        names = [node.name for node in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"nodes: each name once (got {', '.join(names)})")
        apps = {node.ari.app for node in nodes}
        if len(apps) > 1:
            raise ValueError(f"nodes: every node serves the same ARI application (got {', '.join(sorted(apps))})")

    def phone_node_problems(self) -> list[str]:
        """Agents' phones naming a node that is not configured (`c/8001` with nodes a and b): the file's
        check (`load_config`) and the live administration's (`plugins/admin/validation.py`)."""
        known = [node.name for node in self.asterisk_nodes]
        problems = []
        for agent in self.acd.agents:
            node, slash, _ = agent.endpoint.partition("/")
            if slash and node not in known:
                problems.append(f"agents[{agent.id}]: endpoint {agent.endpoint!r} names no node (nodes:"
                                f" {', '.join(known)}; write NODE/ENDPOINT, e.g. {known[-1]}/8001)")
        return problems

    @property
    def asterisk_nodes(self) -> list[NodeSettings]:
        """The Asterisk servers: `nodes`, or the one given by `ari` and `ami` (named "default")."""
        return self.nodes or [NodeSettings(DEFAULT_NODE, self.ari, self.ami)]

    def weak_tokens(self) -> list[str]:
        """Why each token would be unsafe outside the demo (a demo-* value, too short to guess hard)."""
        problems = []
        for token in self.tokens:
            if token.token.startswith("demo-"):
                problems.append(f"tokens: {token.name!r} uses a demo token")
            elif len(token.token) < MIN_TOKEN_LENGTH:
                problems.append(f"tokens: {token.name!r} is shorter than {MIN_TOKEN_LENGTH} characters")
        if self.softphone.enabled and self.softphone.secret.startswith("demo-"):
            problems.append("softphone: the secret is the demo's (it derives every agent's SIP password)")
        for user in self.users:
            if user.password.startswith("demo-"):
                problems.append(f"users: {user.name!r} uses a demo password")
            elif len(user.password) < self.auth.min_password_length:
                problems.append(f"users: {user.name!r} has a password shorter than "
                                f"{self.auth.min_password_length} characters")
        return problems

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_path / "controller.sqlite3"

    @property
    def lock_path(self) -> Path:
        """Held (flock) by the one controller process using this data directory."""
        return self.data_path / "controller.lock"

    @property
    def health_url(self) -> str:
        """Where the guard asks whether a controller is up."""
        if self.guard.controller_url:
            return self.guard.controller_url
        host = "127.0.0.1" if self.http.listen in ("0.0.0.0", "::", "") else self.http.listen
        return f"http://{host}:{self.http.port}/healthz"


def load_config(path: str | Path) -> Config:
    """Read and check the configuration; raises SettingsError with file:line:column messages."""
    config = load_file_as(Config, path)
    base = Path(path).resolve().parent
    # Relative paths are relative to the configuration file, not to where the process started.
    def resolved(text: str) -> str:
        if not text or Path(text).is_absolute():
            return text
        return str(base / text)

    if problems := config.phone_node_problems():
        raise SettingsError([f"{path}: {problem}" for problem in problems])
    return replace(
        config,
        # With several nodes, what reads `ari` (the application's name, timeouts) reads the first node's.
        ari=config.nodes[0].ari if config.nodes else config.ari,
        ami=config.nodes[0].ami if config.nodes else config.ami,
        source=str(path),
        data_dir=resolved(config.data_dir),
        ivr=replace(config.ivr, flows_dir=resolved(config.ivr.flows_dir)),
        http=replace(config.http, tls_cert=resolved(config.http.tls_cert), tls_key=resolved(config.http.tls_key)),
    )



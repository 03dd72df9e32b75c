"""The controller's configuration file (YAML). See demo/controller.yaml for a commented example.

Every section has safe defaults: everything listens on loopback, nothing is exposed. Secrets
(ARI/AMI passwords, API tokens) can come from the environment with `${VAR}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from controller.settings import load_file_as, require_positive

Role = Literal["agent", "supervisor", "admin", "integration"]


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088/ari"
    user: str = "ccc"
    password: str = ""
    app: str = "ccc"  # the Stasis application name the dialplan hands calls to
    request_timeout: float = 5.0
    pool_size: int = 50  # keep below http.conf sessionlimit

    def __post_init__(self) -> None:
        require_positive(self, "request_timeout", "pool_size")


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "ccc"
    secret: str = ""


@dataclass(frozen=True)
class AgiSettings:
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 4573


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
class WebhookSettings:
    name: str
    url: str
    secret: str  # HMAC-SHA256 key; the receiver checks X-CCC-Signature with it
    types: list[str] = field(default_factory=list)  # event type patterns, e.g. ["call.*"]; empty: all
    queue: str | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        require_positive(self, "timeout")


@dataclass(frozen=True)
class IvrSettings:
    flows_dir: str = "ivr_flows"
    # What a call hears when no flow serves its DID, and what happens next: the dialplan's
    # fallback route (agents ring, then voicemail), or a hang-up (an announcement-only number).
    default_greeting: str = "sound:ccc/welcome"
    no_flow: Literal["fallback", "hangup"] = "fallback"


@dataclass(frozen=True)
class AcdQueueConfig:
    """One ACD queue (see README "ACD"); the routing engine gets these as `QueueSettings`."""

    name: str
    strategy: Literal["longest_idle", "fewest_calls", "round_robin", "skills", "ring_all"] = "longest_idle"
    skills: dict[str, int] = field(default_factory=dict)  # required skill -> minimum level (1-10)
    wrapup_seconds: float = 60.0  # after-call work (ACW) after each call; 0: ready at once
    ring_timeout: float = 15.0  # ring an agent this long, then RONA
    max_wait: float = 600.0  # then the overflow target
    overflow: str | None = None  # queue:NAME | voicemail | callback | node:ID (None: the flow decides)
    announce_interval: float = 30.0  # position / wait announcements (0: music only)
    announce_wait_time: bool = True
    announce_agent_number: bool = True  # "工号 1001 为您服务" before the bridge
    service_level_seconds: float = 20.0
    no_agents: Literal["wait", "overflow"] = "overflow"  # when nobody serving the queue is logged in
    priority_aging_seconds: float = 60.0  # one priority level per this many seconds waited
    recording: Literal["always", "never", "on_demand"] = "on_demand"
    title: str = ""  # shown on the wallboard
    category: Literal["", "inquiry", "billing", "order", "complaint", "suggestion", "sales"] = ""  # for reports


@dataclass(frozen=True)
class AcdAgentConfig:
    id: str
    name: str
    number: str  # the agent's number (工号) announced to callers
    endpoint: str  # the agent's usual phone (PJSIP endpoint); `agent login --phone` can change it
    skills: dict[str, int] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)  # queue -> penalty (0 first)


@dataclass(frozen=True)
class AcdSettings:
    queues: list[AcdQueueConfig] = field(default_factory=list)
    agents: list[AcdAgentConfig] = field(default_factory=list)
    not_ready_reasons: list[str] = field(
        default_factory=lambda: ["meal", "meeting", "training", "restroom", "helping", "no_answer", "login"])
    center_name: str = ""  # said in the agent-number announcement
    outbound_caller_id: str = ""  # the number customers see on click-to-dial calls (e.g. the hotline)
    # Standard recordings an agent plays to the caller on command (name -> text to speak, or sound:NAME).
    standard_prompts: dict[str, str] = field(default_factory=dict)


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
class Config:
    data_dir: str = "./var"
    ari: AriSettings = field(default_factory=AriSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    customers: CustomerSettings = field(default_factory=CustomerSettings)
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    # DID -> flow id; overrides the `entry.dids` the flows declare themselves.
    dids: dict[str, str] = field(default_factory=dict)
    tokens: list[TokenSettings] = field(default_factory=list)
    acd: AcdSettings = field(default_factory=AcdSettings)
    standards: dict[str, Any] = field(default_factory=dict)
    webhooks: list[WebhookSettings] = field(default_factory=list)
    compat: CompatSettings = field(default_factory=CompatSettings)  # queue_log, CDRs, AMI events

    source: str = ""  # the file it was read from (set by `load_config`)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_path / "controller.sqlite3"


def load_config(path: str | Path) -> Config:
    """Read and check the configuration; raises SettingsError with file:line:column messages."""
    config = load_file_as(Config, path)
    base = Path(path).resolve().parent
    data_dir = Path(config.data_dir)
    flows_dir = Path(config.ivr.flows_dir)
    # Relative paths are relative to the configuration file, not to where the process started.
    return replace(
        config,
        source=str(path),
        data_dir=str(data_dir if data_dir.is_absolute() else base / data_dir),
        ivr=replace(config.ivr, flows_dir=str(flows_dir if flows_dir.is_absolute() else base / flows_dir)),
    )


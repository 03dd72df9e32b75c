"""Several Asterisk servers under one controller (README "Several Asterisk servers").

Each node has its own ARI client, event stream and AMI connection; every call runs on the node its caller's
channel is on (`CallSession.ari` is that node's client), and its bridge stays there. An agent's phone names
its node: `b/8001` is endpoint 8001 on node b (a phone with no node is on the first node). A call on node a
rings a phone on node b through the PJSIP trunk `ccc-node-b` configured on a (`PJSIP/8001@ccc-node-b`);
node b's `ccc-from-nodes` context dials the phone (`deploy/templates/pjsip-nodes.conf`).

A node whose event stream stays down for `DOWN_AFTER` seconds is down: its calls end as `node_down`,
agents whose phones are on it become not ready (`phone_unreachable`); when its stream is back they are
ready again (unless they changed state themselves meanwhile), and its calls left in Stasis are resumed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.ari.client import AriClient
from controller.ari.events import EventStream
from controller.config import Config, NodeSettings
from controller.plugins.ami.services import AmiService

log = logging.getLogger("controller.nodes")

#: The PJSIP endpoint on each node that reaches node NAME: `ccc-node-NAME`.
TRUNK_PREFIX = "ccc-node-"
#: Seconds a node's event stream may be down (a restart, a blip) before the node counts as down.
DOWN_AFTER = 3.0


class NodeDialing:
    """Which node a phone is on, and how a dial string is dialled from a given node."""

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.default = self.names[0]

    def split_phone(self, endpoint: str) -> tuple[str, str]:
        """`b/8001` -> ("b", "8001"); a phone naming no node is on the first node."""
        node, slash, phone = endpoint.partition("/")
        if slash and node in self.names:
            return node, phone
        return self.default, endpoint

    def node_of_dial(self, dial: str) -> str:
        """The node a dial string's phone is on (`PJSIP/b/8001` -> b); the first node for anything else."""
        tech, slash, rest = dial.partition("/")
        if not slash or tech.upper() != "PJSIP" or "@" in rest:
            return self.default
        return self.split_phone(rest)[0]

    def route(self, from_node: str, dial: str) -> str:
        """The dial string as node `from_node` dials it: `PJSIP/b/8001` is `PJSIP/8001` on b and
        `PJSIP/8001@ccc-node-b` elsewhere. Strings with a trunk (`@`) or of other technologies are as given."""
        tech, slash, rest = dial.partition("/")
        if not slash or tech.upper() != "PJSIP" or "@" in rest:
            return dial
        node, phone = self.split_phone(rest)
        return f"{tech}/{phone}" if node == from_node else f"{tech}/{phone}@{TRUNK_PREFIX}{node}"


@dataclass
class AsteriskNode:
    """One Asterisk server: its settings, ARI client, event stream, AMI connection and up/down state."""

    settings: NodeSettings
    ari: AriClient
    ami: AmiService
    stream: EventStream | None = None  # set once the controller's handlers exist
    down: bool = False  # its stream stayed disconnected for DOWN_AFTER seconds (reset when it connects)
    down_since: float | None = None
    times_down: int = 0
    _down_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def connected(self) -> bool:
        return self.stream is not None and self.stream.connected.is_set()

    def health(self) -> dict[str, object]:
        return {"ari_connected": self.connected, "down": self.down, "down_since": self.down_since,
                "times_down": self.times_down, "ari_connections": self.stream.connections if self.stream else 0,
                "ami_connected": self.ami.connected, "ami_reachable": self.ami.reachable}


class Nodes:
    """Every Asterisk server of the configuration, by name (the first is the default)."""

    def __init__(self, config: Config) -> None:
        settings = config.asterisk_nodes
        self.dialing = NodeDialing([node.name for node in settings])
        self.by_name: dict[str, AsteriskNode] = {}
        for node in settings:
            ari = AriClient(node.ari.url, node.ari.user, node.ari.password,
                            request_timeout=node.ari.request_timeout, pool_size=node.ari.pool_size, node=node.name,
                            dial_route=self._router(node.name) if len(settings) > 1 else None)
            self.by_name[node.name] = AsteriskNode(node, ari, AmiService(node.ami))
        self.on_down: list[Callable[[str], None]] = []  # node name; after DOWN_AFTER seconds disconnected
        self.on_up: list[Callable[[str], None]] = []  # a node that was down connected again

    def _router(self, name: str) -> Callable[[str], str]:
        return lambda dial: self.dialing.route(name, dial)

    @property
    def default(self) -> AsteriskNode:
        return self.by_name[self.dialing.default]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def client(self, name: str) -> AriClient:
        """The ARI client of node `name` (the default node's for a name no longer configured)."""
        return (self.by_name.get(name) or self.default).ari

    def client_for_dial(self, dial: str) -> AriClient:
        """Where to originate a call that starts by ringing `dial` (click-to-dial: the phone's own node)."""
        return self.client(self.dialing.node_of_dial(dial))

    def phone_reachable(self, endpoint: str) -> bool:
        """False while the node of this phone is down."""
        node = self.by_name.get(self.dialing.split_phone(endpoint)[0])
        return node is None or not node.down

    # -- up and down ---------------------------------------------------------------------------------

    def disconnected(self, name: str) -> None:
        """A node's event stream dropped: down unless it is back within DOWN_AFTER seconds."""
        node = self.by_name[name]
        if node._down_timer is None and not node.down:
            node._down_timer = asyncio.get_running_loop().call_later(DOWN_AFTER, self._went_down, name)

    def _went_down(self, name: str) -> None:
        node = self.by_name[name]
        node._down_timer = None
        if node.connected or node.down:
            return
        node.down, node.down_since, node.times_down = True, time.time(), node.times_down + 1
        log.error("Asterisk node %s is down (no ARI event stream for %.0f s): its calls are lost, agents whose "
                  "phones are on it are not ready (phone_unreachable)", name, DOWN_AFTER)
        for hook in self.on_down:
            try:
                hook(name)
            except Exception:
                log.exception("node %s down: a handler failed", name)

    def connected(self, name: str) -> None:
        """A node's event stream connected (first time or again)."""
        node = self.by_name[name]
        if node._down_timer is not None:
            node._down_timer.cancel()
            node._down_timer = None
        if not node.down:
            return
        node.down, node.down_since = False, None
        log.warning("Asterisk node %s is back", name)
        for hook in self.on_up:
            try:
                hook(name)
            except Exception:
                log.exception("node %s up: a handler failed", name)

    def health(self) -> dict[str, dict[str, object]]:
        return {node.name: node.health() for node in self}

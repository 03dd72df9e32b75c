"""Which channels the guard moves to the fallback route: pure logic on what ARI REST shows.

A channel moves when all of these hold:
- it sits in Stasis of our application, with a caller's arguments (the DID: digits). Agent and
  party legs (`leg,<call>`), snoops, click-to-dial channels and anything else stay;
- it is in no bridge (the IVR, or between two steps), or only in a holding bridge: a queue's
  (`br-queue-*`, shared by the queue's waiting callers, music on hold) or a call's own (`br-hold-*`,
  the caller of a connected call on hold or in a consultation);
- and its call has nobody in another bridge. A call's own holding bridge is named after the call; the
  queues' shared ones are named by their id (a caller in one of those is waiting, nobody else is on their
  call); talk bridges come from a pool and cannot be named after the call they serve, so a call is busy when
  one of its legs (`leg,<call>`: the agent, a consulted or conference party) is in a bridge that is not a
  holding one (or that bridge is named after it, as talk bridges were before the pool). A caller on hold or in
  a consultation sits in their call's `br-hold-*` bridge while the agent is still in the call's talk bridge
  (or with the consulted party): they stay.
Callers in a talk bridge (`br-talk-*`), or any bridge that is not a holding one, stay where they are.
An agent leg that answered but was never bridged (the controller died in between) keeps nobody
waiting: the caller moves, the leg is left alone (the agent hears silence and hangs up).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.ari.models import Bridge, Channel

#: Holding bridges: a queue's shared one (controller/plugins/acd/holding.py; a per-call `br-queue-<hex>` before),
#: and a connected call's own while the agent holds it (controller/plugins/acd/stasis.py `QueueCall.hold`).
HOLDING_BRIDGE_PREFIXES = ("br-queue-", "br-hold-")


@dataclass(frozen=True)
class Stray:
    """A caller left waiting by a controller that is gone."""

    channel_id: str
    channel_name: str  # AMI addresses channels by name
    did: str  # the fallback route's extension
    queue_bridge: str | None  # the holding bridge it waited in (left for the next controller)


def _call_of(bridge: Bridge) -> str:
    return str(bridge.raw.get("name") or "")


def strays(channels: list[Channel], bridges: list[Bridge], app: str) -> list[Stray]:
    bridges_of: dict[str, list[Bridge]] = {}
    for bridge in bridges:
        for channel_id in bridge.channels:
            bridges_of.setdefault(channel_id, []).append(bridge)
    # Calls someone is still talking on: a person in a bridge that is not a holding one (a leg of the call in it).
    call_of_leg = {channel.id: args[1] for channel in channels
                   if (args := _stasis_args(channel, app)) and len(args) > 1 and args[0] == "leg"}
    talking = [bridge for bridge in bridges if not bridge.id.startswith(HOLDING_BRIDGE_PREFIXES) and bridge.channels]
    busy_calls = {_call_of(bridge) for bridge in talking} | {
        call_of_leg[channel_id] for bridge in talking for channel_id in bridge.channels if channel_id in call_of_leg}
    found = []
    for channel in channels:
        args = _stasis_args(channel, app)
        if not args or not args[0].isdigit():
            continue  # not in our application, or not a caller
        in_bridges = bridges_of.get(channel.id, [])
        if any(not bridge.id.startswith(HOLDING_BRIDGE_PREFIXES) for bridge in in_bridges):
            continue  # talking (or monitored, conferenced...): never touched
        if any(_call_of(bridge) in busy_calls for bridge in in_bridges):
            continue  # on hold or in a consultation: the agent is still on the call
        found.append(Stray(channel.id, channel.name, args[0], in_bridges[0].id if in_bridges else None))
    return found


def _stasis_args(channel: Channel, app: str) -> list[str] | None:
    app_and_args = channel.stasis_app_and_args()
    if app_and_args is None or app_and_args[0] != app:
        return None
    return app_and_args[1]

"""ARI answers mapped to the client's named errors (the real answers: tests/e2e/test_ari_client.py)."""

from __future__ import annotations

import json

from controller.ari.client import AriClient
from controller.ari.errors import AriConflict, ChannelGone


def test_adding_a_channel_that_left_stasis_to_a_bridge_is_channel_gone() -> None:
    # What Asterisk 22 answered when an agent's phone hung up just after answering and the controller, slowed down,
    # bridged it after its StasisEnd (bench_concurrency with tracing): the flow failed at its queue node.
    left = AriClient._error("POST", "/bridges/br-talk-1/addChannel", 422,
                            json.dumps({"message": "Channel not in Stasis application"}))
    assert isinstance(left, ChannelGone) and left.status == 422
    # A bridge's other conflicts stay conflicts (the channel is there: our request is wrong).
    other = AriClient._error("POST", "/bridges/br-talk-1/addChannel", 409,
                             json.dumps({"message": "Bridge not in Stasis application"}))
    assert isinstance(other, AriConflict) and not isinstance(other, ChannelGone)

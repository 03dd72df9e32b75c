"""The ARI event filter turns off only event types that no handler reads."""

from __future__ import annotations

import re
from pathlib import Path

from controller.ari.events import UNUSED_EVENT_TYPES

CONTROLLER = Path(__file__).resolve().parents[2] / "controller"
#: Where event types are defined and parsed (and the list itself), not handled.
DEFINITIONS = {CONTROLLER / "ari" / "models.py", CONTROLLER / "ari" / "events.py"}


def test_no_handler_uses_a_filtered_event_type() -> None:
    used = {}
    for source in CONTROLLER.rglob("*.py"):
        if source in DEFINITIONS:
            continue
        text = source.read_text()
        for kind in UNUSED_EVENT_TYPES:
            if re.search(rf"\b{kind}\b", text):
                used.setdefault(kind, []).append(str(source.relative_to(CONTROLLER)))
    assert not used, f"event types filtered out in controller/ari/events.py but read here: {used}"


def test_the_events_calls_wait_for_stay_on() -> None:
    needed = {"StasisStart", "StasisEnd", "ChannelDtmfReceived", "ChannelHangupRequest", "ChannelDestroyed",
              "PlaybackFinished", "RecordingFinished", "RecordingFailed", "Dial", "ApplicationReplaced"}
    assert needed.isdisjoint(UNUSED_EVENT_TYPES)
    assert "ChannelVarset" in UNUSED_EVENT_TYPES  # the largest share of what Asterisk sent per call

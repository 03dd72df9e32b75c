"""The SIPp callers' keys: a key pressed again in a call must reach Asterisk as a new event."""

from __future__ import annotations

import itertools
import re
import struct
from pathlib import Path

import pytest

from tests.sipp import PCAP_DIR, Dtmf, Pause, _rtp_offsets, uac_scenario

pytestmark = pytest.mark.skipif(not (PCAP_DIR / "dtmf_2833_2.pcap").exists(), reason="sip-tester not installed")


def rtp_span(pcap: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(sequence number, timestamp) of the first and the last RTP packet of a capture."""
    capture = Path(pcap).read_bytes()
    offsets = _rtp_offsets(capture)
    first = struct.unpack_from(">HI", capture, offsets[0][0] + 2)
    last = struct.unpack_from(">HI", capture, offsets[-1][0] + 2)
    return first, last


def played(steps: list[Pause | Dtmf]) -> list[str]:
    return re.findall(r'play_pcap_audio="([^"]+)"', uac_scenario("4008001234", "13800138000", steps))


def test_a_repeated_or_lower_key_is_played_after_the_previous_one() -> None:
    captures = played([Dtmf("2"), Pause(1000), Dtmf("2"), Dtmf("1")])
    assert captures[0] == str(PCAP_DIR / "dtmf_2833_2.pcap")
    for before, after in itertools.pairwise(captures):
        (_, (last_seq, last_ts)), ((first_seq, first_ts), _) = rtp_span(before), rtp_span(after)
        assert first_seq > last_seq and first_ts > last_ts, (before, after)
    # Only the RTP header moved: same key, same payload (the event code is the payload's first byte).
    original, moved = Path(captures[0]).read_bytes(), Path(captures[1]).read_bytes()
    assert len(original) == len(moved)
    assert [moved[rtp + 12] for rtp, _ in _rtp_offsets(moved)] == [2] * len(_rtp_offsets(moved))


def test_keys_in_ascending_order_play_the_captures_as_they_are() -> None:
    assert played([Dtmf("678")]) == [str(PCAP_DIR / f"dtmf_2833_{key}.pcap") for key in "678"]

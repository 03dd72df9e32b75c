"""The tests' SIPp ports: never one Asterisk may hold for a call's media.

A SIPp caller whose SIP port Asterisk had taken for an RTP stream (its range, rtp.conf, is 10000-14999; node b of
the multinode tests uses 20000-24999) exited at once ("Unable to bind main socket"), its call never placed: two
callers of test_resume_waiting's ten never reached Stasis (one RTP + RTCP pair blocks two consecutive ports)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests import sipp
from tests.bench import bench_fullpath

REPO = Path(__file__).resolve().parents[2]
#: SIPp's control socket: port 8888, or the next free one of 60 (`-cp` unset), bound by every SIPp process.
SIPP_CONTROL_PORTS = range(8888, 8888 + 60)


def asterisk_rtp_ranges() -> list[range]:
    """The sandbox's RTP range (asterisk-conf/rtp.conf) and node b's (tests/e2e/nodes.py moves it up by 10,000)."""
    text = (REPO / "asterisk-conf/rtp.conf").read_text()
    start = int(re.search(r"^rtpstart\s*=\s*(\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    end = int(re.search(r"^rtpend\s*=\s*(\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    nodes = (REPO / "tests/e2e/nodes.py").read_text()
    assert f'"rtpstart = {start + 10_000}"' in nodes and f'"rtpend = {end + 10_000}"' in nodes
    return [range(start, end + 1), range(start + 10_000, end + 10_001)]


@pytest.mark.parametrize("pid", range(40))
def test_sip_and_media_ports_stay_out_of_asterisk_s_rtp_ranges_and_apart(pid: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sipp.os, "getpid", lambda: pid)
    monkeypatch.setattr(sipp, "_ports", itertools.count(0))
    pairs = [sipp._next_ports() for _ in range(400)]  # a whole cycle of the counter
    sip_ports = {sip for sip, _media in pairs}
    media_ports = {port for _sip, media in pairs for port in range(media, media + 4)}  # audio, RTCP, video
    assert len(sip_ports) == 400 and len({media for _sip, media in pairs}) == 400
    assert not sip_ports & media_ports
    for rtp in asterisk_rtp_ranges():
        assert not [port for port in sip_ports | media_ports if port in rtp]
    assert not [port for port in sip_ports | media_ports if port in SIPP_CONTROL_PORTS]
    assert all(5060 < port < 32_768 for port in sip_ports | media_ports)  # above Asterisk's SIP, below ephemeral ports


def phone_ports() -> set[int]:
    """The agents' SIPp phones' SIP ports: every `Phone(<port>` in the tests and every contact of the sandbox's
    pjsip.conf, and the benches' PHONE_PORT and the phones above it."""
    texts = [path.read_text() for path in (REPO / "tests").rglob("*.py")]
    ports = {int(port) for text in texts for port in re.findall(r"\bPhone\((\d+)", text)}
    ports |= {int(port) for port in re.findall(r"@127\.0\.0\.1:(\d+)", (REPO / "asterisk-conf/pjsip.conf").read_text())}
    ports |= {bench_fullpath.PHONE_PORT + n for n in range(4)}
    return ports


def test_the_agents_phones_stay_out_of_asterisk_s_rtp_ranges() -> None:
    """A phone started on a port a call's RTP or RTCP holds exits at once, and a call's RTCP cannot bind beside a
    phone (the phones were at 15000-15005 inside 10000-19999 until 2026-11-27)."""
    ports = phone_ports()
    assert {5090, 15001, 15101} <= ports  # the search finds them
    for rtp in asterisk_rtp_ranges():
        assert not sorted(port for port in ports if port in rtp), rtp

"""SIPp as the test's telephone: callers (UAC) and agent / customer phones (UAS).

Scenarios are generated from a short list of steps, so a test reads like what the caller does:

    caller = Caller("4008001234", caller="13800138000", steps=[Pause(2000), Dtmf("2"), Pause(3000)])
    result = await caller.run()          # places the call, does the steps, hangs up
    assert result.ok

Each SIPp instance gets its own SIP and media ports, so several can run at once. DTMF is sent as
RFC 2833 events from the captures Debian's sip-tester ships (Asterisk reports ChannelDtmfReceived).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import shutil
import signal
import socket
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SIPP = shutil.which("sipp") or "sipp"
PCAP_DIR = Path("/usr/share/sip-tester")
ASTERISK = "127.0.0.1:5060"
_ports = itertools.count(0)


def _next_ports() -> tuple[int, int]:
    """A (SIP port, media port) pair unique in this test process: SIP ports 30000-32399, media ports 6000-7999 (4
    each). SIP ports stay out of Asterisk's RTP range (asterisk-conf/rtp.conf, 10000-14999; node b of the multinode
    tests 20000-24999), where a port Asterisk held for a call's RTP or RTCP made SIPp exit at once ("Unable to bind
    main socket"), its call never placed (SIP ports were 5100-13099 until 2026-11-27: two callers of
    test_resume_waiting's ten once never reached Stasis); out of SIPp's own control ports (8888 and the next 59, each
    SIPp takes the first free one) and below Linux's ephemeral ports (32768-60999)."""
    n = next(_ports) % 400
    base = 30000 + (os.getpid() % 6) * 400
    return base + n, 6000 + ((os.getpid() % 4) * 500 + n * 4) % 2000


@dataclass(frozen=True)
class Pause:
    ms: int


@dataclass(frozen=True)
class Speak:
    """Talk: play SPEECH_PCAP (7 s of A-law speech; the call then offers A-law), e.g. to leave a message."""

    ms: int = 7500


@dataclass(frozen=True)
class Dtmf:
    """Press keys, one RFC 2833 capture each, `gap_ms` apart (Asterisk needs ~1 s between digits).

    SIPp's captures were cut from one recording of the keys 0-9 in order: same SSRC, RTP sequence
    numbers and timestamps rising with the key. Asterisk drops an event whose timestamp is not newer
    than the last one's as a duplicate, so a key repeated in a call (or 6 after 8) would never be
    reported: such a press plays a copy of the capture moved after the previous press (`_pcap_after`).
    """

    digits: str
    gap_ms: int = 1000


@dataclass(frozen=True)
class WaitForBye:
    """Stay on the line until the far end hangs up (then answer the BYE). `timeout_ms` bounds a failing test,
    it is not the expected wait: leave room for a loaded machine (CI runs three e2e groups on two cores),
    about twice what the call should take, e.g. 60 s for a queue call (ring, agent-number announcement, talk)."""

    timeout_ms: int = 60_000


@dataclass(frozen=True)
class TalkUntilBye:
    """Talk (SIPp's 7-second A-law speech capture, again and again, each copy's RTP after the previous one's)
    until the far end hangs up, for at most `rounds` captures; the call then offers A-law."""

    rounds: int = 8


CallerStep = Pause | Dtmf | WaitForBye | Speak | TalkUntilBye

_NAMES = {"*": "star", "#": "pound"}

_SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
"""

_BYE = """  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: [cseq] BYE
      Contact: <sip:[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

# A phone (UAS) hanging up: its own tag is in the dialog's To, the far end's in From, so the two
# headers are swapped (captured from the ACK); sending them as received gets a 481 from Asterisk.
_UAS_BYE = _BYE.replace("[last_From:]", "From: [$local_to]").replace("[last_To:]", "To: [$remote_from]")

_ANSWER_BYE = """  <recv request="BYE" timeout="{timeout}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join((" " * spaces + line) if line else "" for line in text.splitlines())


def _invite(did: str, caller: str, sdp: str, *, cseq: int, authenticated: bool) -> str:
    """The INVITE (CSeq `cseq`), with the credentials SIPp computes from the challenge if `authenticated`."""
    credentials = "\n      [authentication]" if authenticated else ""
    return f"""  <send retrans="500">
    <![CDATA[
      INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{did}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>{credentials}
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
  <recv response="100" optional="true"/>
"""


def _ack_error(did: str, caller: str, cseq: int) -> str:
    """The ACK of an error response (401, 486…): in the INVITE's transaction (its Via, from the response)."""
    return f"""  <send>
    <![CDATA[
      ACK sip:{did}@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Content-Length: 0

    ]]>
  </send>
"""


def _rtp_offsets(capture: bytes) -> list[tuple[int, int]]:
    """(RTP header, UDP header) offsets of each packet of a little-endian pcap of RTP over UDP/IPv4."""
    assert struct.unpack_from("<I", capture, 0)[0] == 0xA1B2C3D4, "not a little-endian pcap"
    link = {1: 14, 113: 16}[struct.unpack_from("<I", capture, 20)[0]]  # Ethernet or Linux cooked
    offsets, position = [], 24
    while position + 16 <= len(capture):
        ip = position + 16 + link
        udp = ip + (capture[ip] & 0x0F) * 4
        offsets.append((udp + 8, udp))
        position += 16 + struct.unpack_from("<I", capture, position + 8)[0]
    return offsets


def _pcap_after(pcap: Path, last: tuple[int, int]) -> tuple[Path, tuple[int, int]]:
    """`pcap`, or a copy of it whose RTP sequence numbers and timestamps come after `last` (the last
    key's (sequence number, timestamp)); returns the capture to play and its own last pair."""
    capture = bytearray(pcap.read_bytes())
    offsets = _rtp_offsets(capture)
    first_seq, first_ts = struct.unpack_from(">HI", capture, offsets[0][0] + 2)
    if first_seq > last[0] and first_ts > last[1]:
        end_seq, end_ts = struct.unpack_from(">HI", capture, offsets[-1][0] + 2)
        return pcap, (end_seq, end_ts)
    seq_shift, ts_shift = last[0] + 50 - first_seq, last[1] + 16000 - first_ts  # 50 packets, 2 s later
    for rtp, udp in offsets:
        seq, ts = struct.unpack_from(">HI", capture, rtp + 2)
        struct.pack_into(">HI", capture, rtp + 2, (seq + seq_shift) & 0xFFFF, (ts + ts_shift) & 0xFFFFFFFF)
        struct.pack_into(">H", capture, udp + 6, 0)  # no UDP checksum (allowed over IPv4)
    moved = _moved_captures() / f"{pcap.stem}-{seq_shift}-{ts_shift}.pcap"
    moved.write_bytes(capture)
    end_seq, end_ts = struct.unpack_from(">HI", capture, offsets[-1][0] + 2)
    return moved, (end_seq, end_ts)


@functools.cache
def _moved_captures() -> Path:
    return Path(tempfile.mkdtemp(prefix="ccc-dtmf-"))


def uac_scenario(did: str, caller: str, steps: list[CallerStep], *, auth: bool = False,
                 refused: bool = False) -> str:
    """A caller's scenario; `auth`: a phone answering Asterisk's challenge (401) with its password
    (-au/-ap); `refused`: the call is expected to be turned down with an error status (no steps)."""
    sdp = _indent(_SDP, 6)
    if any(isinstance(step, TalkUntilBye | Speak) for step in steps):  # audio of their own: A-law
        sdp = sdp.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000")
    cseq = 2 if auth else 1
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="ccc caller">\n'
    if auth:
        head += _invite(did, caller, sdp, cseq=1, authenticated=False) + '  <recv response="401" auth="true"/>\n' \
            + _ack_error(did, caller, 1)
    head += _invite(did, caller, sdp, cseq=cseq, authenticated=auth) + """  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
"""
    if refused:
        return head + """  <recv response="486" optional="true" next="ack"/>
  <recv response="480" optional="true" next="ack"/>
  <recv response="503" next="ack"/>
  <label id="ack"/>
""" + _ack_error(did, caller, cseq) + "</scenario>\n"
    parts = [head + f"""  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: {cseq} ACK
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""]
    ends_with_their_bye = False
    last_rtp = (-1, -1)  # the RTP sequence number and timestamp of the last key pressed
    for step in steps:
        if isinstance(step, Pause):
            parts.append(f'  <pause milliseconds="{step.ms}"/>\n')
        elif isinstance(step, Dtmf):
            for digit in step.digits:
                if digit == " ":
                    parts.append(f'  <pause milliseconds="{step.gap_ms}"/>\n')
                    continue
                pcap, last_rtp = _pcap_after(PCAP_DIR / f"dtmf_2833_{_NAMES.get(digit, digit)}.pcap", last_rtp)
                parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
                             f'  <pause milliseconds="{step.gap_ms}"/>\n')
        elif isinstance(step, Speak):
            parts.append(f'  <nop><action><exec play_pcap_audio="{SPEECH_PCAP}"/></action></nop>\n'
                         f'  <pause milliseconds="{step.ms}"/>\n')
        elif isinstance(step, WaitForBye):
            parts.append(_ANSWER_BYE.format(timeout=step.timeout_ms))
            ends_with_their_bye = True
        elif isinstance(step, TalkUntilBye):
            speech = (-1, -1)
            for round_ in range(step.rounds):
                pcap, speech = _pcap_after(Path(SPEECH_PCAP), speech)
                last = round_ == step.rounds - 1
                parts.append(f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
                             f'  <recv request="BYE" timeout="{60_000 if last else 7_000}"'
                             + ('/>\n' if last else f' ontimeout="talk{round_ + 1}" next="talked"/>\n'
                                f'  <label id="talk{round_ + 1}"/>\n'))
            parts.append('  <label id="talked"/>\n' + _ANSWER_BYE.split("\n", 1)[1])
            ends_with_their_bye = True
    if not ends_with_their_bye:
        parts.append(_BYE)
    parts.append("</scenario>\n")
    return "".join(parts)


#: SIPp's 7-second A-law speech capture: a phone that "talks" plays it after answering.
SPEECH_PCAP = "/usr/share/sip-tester/g711a.pcap"


def uas_scenario(answer_after_ms: int = 0, *, reject: int | None = None, hold_ms: int | None = None,
                 talk: bool = False) -> str:
    """A phone: rings, answers after `answer_after_ms` (or rejects with a status), then either
    waits for the far end's BYE or hangs up itself after `hold_ms`. With `talk`, it answers with
    A-law and plays `SPEECH_PCAP` (7 s of audio) once the call is up."""
    sdp = _indent(_SDP, 6)
    if talk:
        sdp = sdp.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000")
    head = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ccc phone">
  <recv request="INVITE" crlf="true" rrs="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
"""
    if reject is not None:
        return head + f"""  <pause milliseconds="{answer_after_ms}"/>
  <send>
    <![CDATA[
      SIP/2.0 {reject} Rejected
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""
    body = head + f"""  <pause milliseconds="{answer_after_ms}"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
"""
    if hold_ms is None:
        return body + '  <recv request="ACK" rtd="true" crlf="true"/>\n' + _ANSWER_BYE.format(timeout=600_000) \
            + "</scenario>\n"
    speech = f"""  <nop><action><exec play_pcap_audio="{SPEECH_PCAP}"/></action></nop>\n""" if talk else ""
    # SIPp refuses variables that are set and never used: capture the dialog's headers only here.
    return body + """  <recv request="ACK" rtd="true" crlf="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>
    </action>
  </recv>
""" + speech + f'  <pause milliseconds="{hold_ms}"/>\n' + _UAS_BYE + "</scenario>\n"


@dataclass
class SippResult:
    returncode: int
    output: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class _Sipp:
    scenario: str
    sip_port: int
    media_port: int
    calls: int = 1
    timeout_s: int = 120
    extra: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ccc-sipp-")))
    local_ip: str = "127.0.0.1"
    process: asyncio.subprocess.Process | None = None

    def _args(self) -> list[str]:
        scenario_file = self.workdir / "scenario.xml"
        scenario_file.write_text(self.scenario)
        return [SIPP, *self.extra, "-sf", str(scenario_file), "-m", str(self.calls), "-i", self.local_ip,
                "-p", str(self.sip_port), "-mi", self.local_ip, "-mp", str(self.media_port), "-nostdin",
                "-timeout", f"{self.timeout_s}s", "-timeout_error", "-trace_err",
                "-error_file", str(self.workdir / "errors.log")]

    async def start(self) -> None:
        # SIPp redraws its statistics screen on stdout all the time: into a file, never a pipe that
        # nobody reads (a full pipe freezes SIPp, and a phone that stops answering looks like a bug).
        with (self.workdir / "stdout.log").open("wb") as stdout:
            self.process = await asyncio.create_subprocess_exec(
                *self._args(), stdout=stdout, stderr=asyncio.subprocess.STDOUT, cwd=self.workdir)
        _STARTED.add(self.process.pid)

    async def wait(self) -> SippResult:
        assert self.process is not None
        await self.process.wait()
        output = (self.workdir / "stdout.log").read_text(errors="replace")
        errors_file = self.workdir / "errors.log"
        errors = errors_file.read_text(errors="replace") if errors_file.exists() else ""
        return SippResult(self.process.returncode or 0, output[-3000:], errors[-3000:])

    async def run(self) -> SippResult:
        await self.start()
        return await self.wait()

    def kill(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()


#: SIPp processes started by the tests (pids): `kill_leftovers()` ends the ones a failed test left behind.
_STARTED: set[int] = set()


def kill_leftovers() -> None:
    """Kill every SIPp process the tests started that still runs (a test that failed before its own
    `kill()` would otherwise leave a phone answering in the next test's place)."""
    for pid in list(_STARTED):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, os.WNOHANG)
    _STARTED.clear()


async def _port_free(port: int, *, within: float) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return True
            except OSError:
                if asyncio.get_running_loop().time() >= deadline:
                    return False
        await asyncio.sleep(0.05)


class Caller(_Sipp):
    """A caller dialling `did` from `caller` and doing `steps`, then hanging up (unless WaitForBye)."""

    def __init__(self, did: str, *, caller: str = "13800138000", steps: list[CallerStep],
                 calls: int = 1, rate: float | None = None, timeout_s: int = 120) -> None:
        sip_port, media_port = _next_ports()
        extra = [ASTERISK]
        if rate is not None:
            extra += ["-r", str(rate)]
        super().__init__(uac_scenario(did, caller, steps), sip_port, media_port, calls=calls,
                         timeout_s=timeout_s, extra=extra)


class PhoneCaller(_Sipp):
    """An agent's phone (a PJSIP endpoint with its password) dialling `number` and doing `steps`.

    It sends from 127.0.0.2: from 127.0.0.1 Asterisk takes every request for the loopback trunk
    (`identify` by address comes first), so the phone is identified by its user name and challenged
    for its password. `refused`: the call is expected to be turned down with an error status."""

    def __init__(self, endpoint: str, number: str, *, password: str | None = None,
                 steps: list[Pause | Dtmf | WaitForBye] | None = None, refused: bool = False,
                 timeout_s: int = 120) -> None:
        sip_port, media_port = _next_ports()
        extra = [ASTERISK, "-au", endpoint, "-ap", password or f"ccc-demo-{endpoint}"]
        super().__init__(uac_scenario(number, endpoint, steps or [], auth=True, refused=refused), sip_port,
                         media_port, timeout_s=timeout_s, extra=extra, local_ip="127.0.0.2")


class Phone(_Sipp):
    """An agent's (or a customer's) phone listening on `sip_port` (8001 -> 15001 in the demo)."""

    async def start(self) -> None:
        """Start SIPp and return once it listens: a phone rung before that looks unreachable."""
        if not await _port_free(self.sip_port, within=3.0):
            # Another process holds the phone's port: this phone would never be rung.
            raise RuntimeError(f"UDP port {self.sip_port} is taken (a phone left running by an earlier test?)")
        await super().start()
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((self.local_ip, self.sip_port))
                except OSError:
                    return  # SIPp holds the port
            if self.process is not None and self.process.returncode is not None:
                return  # it exited (a test will see why)
            await asyncio.sleep(0.05)

    def __init__(self, sip_port: int, *, answer_after_ms: int = 500, reject: int | None = None,
                 hold_ms: int | None = None, calls: int = 1, timeout_s: int = 120, talk: bool = False) -> None:
        _, media_port = _next_ports()
        super().__init__(uas_scenario(answer_after_ms, reject=reject, hold_ms=hold_ms, talk=talk), sip_port,
                         media_port,
                         calls=calls, timeout_s=timeout_s)


#: The RTP packets of `audio_pcap` captures: A-law, 30 ms each (SPEECH_PCAP's own packets, re-filled).
_AUDIO_PACKET_BYTES = 240


def audio_pcap(alaw: bytes, target: Path) -> Path:
    """A capture SIPp's `play_pcap_audio` plays, carrying `alaw` (8 kHz A-law samples) as RTP: SPEECH_PCAP's
    first packet's headers, with the payload, sequence numbers, timestamps and capture times of each 30 ms
    packet filled in (the call must offer A-law: `uas_scenario(talk=True)`)."""
    capture = Path(SPEECH_PCAP).read_bytes()
    (rtp, udp), = _rtp_offsets(capture)[:1]
    header_length = rtp + 12 - 24 - 16  # link, IP, UDP and RTP headers of the first packet
    assert struct.unpack_from("<I", capture, 24 + 8)[0] == header_length + _AUDIO_PACKET_BYTES
    first = bytearray(capture[24 + 16: 24 + 16 + header_length])
    seconds, micros = struct.unpack_from("<II", capture, 24)
    struct.pack_into(">H", first, udp - 24 - 16 + 6, 0)  # no UDP checksum (allowed over IPv4)
    out = bytearray(capture[:24])
    padded = alaw + b"\xd5" * (-len(alaw) % _AUDIO_PACKET_BYTES)  # A-law silence
    for index in range(len(padded) // _AUDIO_PACKET_BYTES):
        packet = bytearray(first)
        seq, ts = struct.unpack_from(">HI", packet, rtp - 24 - 16 + 2)
        struct.pack_into(">HI", packet, rtp - 24 - 16 + 2, (seq + index) & 0xFFFF,
                         (ts + index * _AUDIO_PACKET_BYTES) & 0xFFFFFFFF)
        at = seconds * 1_000_000 + micros + index * 30_000
        length = header_length + _AUDIO_PACKET_BYTES
        out += struct.pack("<IIII", at // 1_000_000, at % 1_000_000, length, length)
        out += packet + padded[index * _AUDIO_PACKET_BYTES:(index + 1) * _AUDIO_PACKET_BYTES]
    target.write_bytes(out)
    return target

"""The sandbox's Asterisk files are exactly the deployment snippets rendered with demo values."""

from __future__ import annotations

from pathlib import Path

from controller.config import Config, SoftphoneSettings
from controller.deploy.render import SNIPPETS, SnippetValues, render, render_all, write_snippets

REPO = Path(__file__).resolve().parents[2]


def test_sandbox_files_are_the_rendered_snippets() -> None:
    for name, text in render_all(SnippetValues()).items():
        committed = REPO / SNIPPETS[name][1] / name
        assert committed.read_text(encoding="utf-8") == text, (
            f"{committed} differs from the template; run: ccctl asterisk-conf render --out . --repository-layout")


def test_render_uses_the_deployments_values(tmp_path: Path) -> None:
    values = SnippetValues(app="callcenter", ari_user="cc", ari_password="s3cret", ami_secret="m4nager",
                           fallback_members=("PJSIP/2001",))
    written = write_snippets(tmp_path, values)
    texts = {path.name: path.read_text() for path in written}
    assert "[cc]" in texts["ari.conf"] and "password = s3cret" in texts["ari.conf"]
    assert "secret = m4nager" in texts["manager.conf"]
    assert "Stasis(callcenter,${CCC_DID})" in texts["ccc-inbound.conf"]
    assert "member => PJSIP/2001" in texts["queues.conf"] and "PJSIP/8001" not in texts["queues.conf"]
    assert "@@" not in "".join(texts.values())
    assert (tmp_path / "WHERE-THESE-GO.txt").exists()
    assert all(oct(path.stat().st_mode)[-3:] == "640" for path in written)


def test_http_tls_follows_a_wss_websocket_url() -> None:
    wss = Config(softphone=SoftphoneSettings(enabled=True, websocket_url="wss://pbx.example.cn:8443/ws",
                                             secret="x" * 16))
    text = render("http.conf", SnippetValues.from_config(wss))
    assert "\ntlsenable = yes\ntlsbindaddr = 0.0.0.0:8443\n" in text
    plain = Config(softphone=SoftphoneSettings(enabled=True, websocket_url="ws://127.0.0.1:8088/ws", secret="x" * 16))
    assert "\n;tlsenable = yes\n" in render("http.conf", SnippetValues.from_config(plain))  # commented out


def test_inbound_calls_are_answered_before_stasis_without_waiting_for_media() -> None:
    """The controller sends no answer request for a channel that arrives up (issue 19); a plain Answer() would wait up
    to 500 ms for the caller's first audio before Stasis() (seen in bench_fullpath: every menu prompt then started
    late and the caller's key stopped it), ARI's answer does not."""
    lines = [line.strip() for line in render_all(SnippetValues())["ccc-inbound.conf"].splitlines()]
    inbound = lines[lines.index("[ccc-inbound]"):lines.index("[ccc-fallback]")]
    answer = next(i for i, line in enumerate(inbound) if "Answer(" in line)
    stasis = next(i for i, line in enumerate(inbound) if "Stasis(" in line)
    assert inbound[answer] == "same => n,Answer(,i)" and answer < stasis, inbound

"""The configuration file: mistakes are reported as file:line:column with what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_config
from controller.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]

BAD_CONFIGS = {
    "wrong type": ("http:\n  port: eighty\n", 2, "http.port: expected an integer, got 'eighty'"),
    "unknown key": ("http:\n  prot: 80\n", 2, "http: unknown key 'prot'"),
    "zero timeout": ("ari:\n  request_timeout: 0\n", 2, "ari: request_timeout: expected a number above 0, got 0.0"),
    "webhook timeout": ("webhooks:\n  - {name: crm, url: 'http://127.0.0.1:9/', secret: s, timeout: -1}\n", 2,
                        "timeout: expected a number above 0"),
    "agent token without agent": ("tokens:\n  - {name: a, token: t, role: agent}\n", 2,
                                  "an agent token needs agent_id"),
    "bad role": ("tokens:\n  - {name: a, token: t, role: boss}\n", 2, "role"),
    "yaml": ("http: {port: 80\n", 2, "invalid YAML"),
    "zero takeover": ("guard:\n  takeover_timeout: 0\n", 2, "takeover_timeout: expected a number above 0"),
    "check slower than takeover": ("guard:\n  takeover_timeout: 2\n  check_interval: 5\n", 2,
                                   "check_interval: must not be longer than takeover_timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_mistakes_name_the_file_line_and_what_was_expected(case: str, tmp_path: Path) -> None:
    text, line, message = BAD_CONFIGS[case]
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert f"{path}:{line}:" in problems and message in problems, problems


def test_the_guard_asks_the_controller_of_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("http:\n  listen: 0.0.0.0\n  port: 8181\n")
    config = load_config(path)
    assert config.health_url == "http://127.0.0.1:8181/healthz" and config.guard.takeover_timeout == 30
    path.write_text("guard:\n  controller_url: http://10.0.0.5:8080/healthz\n")
    assert load_config(path).health_url == "http://10.0.0.5:8080/healthz"
    assert load_config(path).lock_path == tmp_path / "var" / "controller.lock"


def test_the_demo_configuration_loads_with_loopback_defaults() -> None:
    config = load_config(REPO / "demo" / "controller.yaml")
    assert config.http.listen == "127.0.0.1" and config.agi.listen == "127.0.0.1" and config.ami.host == "127.0.0.1"
    assert all(token.agent_id for token in config.tokens if token.role == "agent")


def test_demo_and_short_tokens_refuse_to_start_outside_the_demo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.main import main

    monkeypatch.delenv("CCC_DEMO", raising=False)
    for name in ("CCC_ADMIN_TOKEN", "CCC_SUPERVISOR_TOKEN", "CCC_INTEGRATION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # The demo file copied as it is (README "install"): demo-* tokens, no CCC_DEMO.
    assert main(["--config", str(REPO / "demo/controller.yaml")]) == 2
    err = capsys.readouterr().err
    assert "tokens: 'ops' uses a demo token" in err and "CCC_ADMIN_TOKEN" in err
    short = tmp_path / "short.yaml"
    short.write_text("tokens:\n  - {name: ops, role: admin, token: 'abc123'}\n")
    assert main(["--config", str(short)]) == 2
    assert "tokens: 'ops' is shorter than 24 characters" in capsys.readouterr().err
    # Strong tokens pass; the demo flag (CCC_DEMO=true, as make run and the tests set) allows demo ones.
    strong = tmp_path / "strong.yaml"
    strong.write_text("tokens:\n  - {name: ops, role: admin, token: '0123456789abcdef0123456789abcdef'}\n")
    assert load_config(strong).weak_tokens() == []
    monkeypatch.setenv("CCC_DEMO", "true")
    assert load_config(REPO / "demo/controller.yaml").demo is True
    assert load_config(short).demo is False  # only a file that says so is a demo

"""The configuration file: mistakes are reported as file:line:column with what was expected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from controller.config import Config, load_config
from controller.ivr.repository import FlowRepository
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
    "check slower than takeover": ("guard:\n  takeover_timeout: 2\n  check_interval: 5\n", 3,
                                   "check_interval: must not be longer than takeover_timeout"),
    "store url": ("store:\n  url: mysql://db/ccc\n", 2, "url: expected a postgresql://user@host:port/database URL"),
    "store timeout": ("store:\n  url: postgresql://db/ccc\n  statement_timeout: 0\n", 3,
                      "statement_timeout: expected seconds from 0 to 3600"),
    "queue name with a separator": ("acd:\n  queues:\n    - {name: 'a|b'}\n", 3,
                                    "name: expected 1-64 letters, digits, '.', '_' or '-', got 'a|b'"),
    "agent number not digits": ("acd:\n  agents:\n    - {id: '1', name: a, number: 'x1', endpoint: e}\n", 3,
                                "number: expected the agent's number (工号), 1-16 digits, got 'x1'"),
    "agent endpoint dialing more": ("acd:\n  agents:\n    - {id: '1', name: a, number: '1', endpoint: 'e&x'}\n", 3,
                                    "endpoint: expected a PJSIP endpoint name"),
    "agent skill level 11": ("acd:\n  agents:\n    - {id: '1', name: a, number: '1', endpoint: e,\n"
                             "       skills: {general: 11}}\n", 3,
                             "skills.general: expected a level from 1 to 10, got 11"),
    "queue skill level 0": ("acd:\n  queues:\n    - {name: q, skills: {general: 0}}\n", 3,
                            "skills.general: expected a level from 1 to 10, got 0"),
    "escalation level": ("acd:\n  queues:\n    - name: q\n      escalation:\n        - {after: 0, min_level: 12}\n",
                         5, "min_level: expected a skill level from 1 to 10, got 12"),
    "escalation first step": ("acd:\n  queues:\n    - name: q\n      escalation:\n        - {after: 5, min_level: 7}\n",
                              5, "escalation: the first step is the rule from the start (after: 0), got after: 5"),
    "escalation order": ("acd:\n  queues:\n    - name: q\n      escalation:\n        - {after: 0, min_level: 7}\n"
                         "        - {after: 60, min_level: 4}\n        - {after: 20, min_level: 1}\n",
                         5, "each later than the one before (20 s after 60 s)"),
    "escalation overflow not last": ("acd:\n  queues:\n    - name: q\n      escalation:\n        - {after: 0}\n"
                                     "        - {after: 60, overflow: voicemail}\n        - {after: 90}\n",
                                     5, "the step after: 60 overflows the call, so it must be the last"),
    "escalation overflow target": ("acd:\n  queues:\n    - name: q\n      escalation:\n"
                                   "        - {after: 0, overflow: 'team b'}\n",
                                   5, "overflow: expected queue:NAME, node:ID, voicemail or callback, got 'team b'"),
    "escalation overflow with level": ("acd:\n  queues:\n    - name: q\n      escalation:\n"
                                       "        - {after: 0, overflow: voicemail, min_level: 3}\n",
                                       5, "a step that overflows the call has no min_level or max_penalty"),
    "escalation unknown queue": ("acd:\n  queues:\n    - name: q\n      escalation:\n"
                                 "        - {after: 0}\n        - {after: 120, overflow: 'queue:nowhere'}\n",
                                 3, "queues: q: escalation step after: 120 overflows to unknown queue 'nowhere'"),
    "escalation key": ("acd:\n  queues:\n    - name: q\n      escalation:\n        - {after: 0, level: 3}\n",
                       5, "unknown key 'level' (expected one of: after, max_penalty, min_level, overflow)"),
    "fewest calls window": ("acd:\n  queues:\n    - name: q\n      fewest_calls_window: 0\n", 4,
                            "fewest_calls_window: expected a number above 0"),
    "click-to-dial agent ring": ("acd:\n  outbound_agent_ring_seconds: 2\n", 2,
                                 "outbound_agent_ring_seconds: expected 5 to 120 seconds (30 s is about 6 rings)"),
    "click-to-dial customer ring": ("acd:\n  outbound_customer_ring_seconds: 600\n", 2,
                                    "outbound_customer_ring_seconds: expected 5 to 120 seconds"),
}


def test_click_to_dial_ring_timeouts_are_settings_of_30_seconds_by_default(tmp_path: Path) -> None:
    acd = load_config(REPO / "demo" / "controller.yaml").acd
    assert (acd.outbound_agent_ring_seconds, acd.outbound_customer_ring_seconds) == (30.0, 30.0)
    path = tmp_path / "controller.yaml"
    path.write_text("acd:\n  outbound_agent_ring_seconds: 20\n  outbound_customer_ring_seconds: 45\n")
    acd = load_config(path).acd
    assert (acd.outbound_agent_ring_seconds, acd.outbound_customer_ring_seconds) == (20.0, 45.0)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_mistakes_name_the_file_line_and_what_was_expected(case: str, tmp_path: Path) -> None:
    text, line, message = BAD_CONFIGS[case]
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert f"{path}:{line}:" in problems and message in problems, problems


def test_the_store_is_sqlite_in_data_dir_unless_a_postgresql_url_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(REPO / "demo" / "controller.yaml").store.url == ""  # the default: SQLite in data_dir
    monkeypatch.setenv("CCC_STORE_URL", "postgresql://ccc@db:5432/ccc")
    monkeypatch.setenv("CCC_STORE_PASSWORD", "s3cret")
    store = load_config(REPO / "demo" / "controller.yaml").store
    assert (store.url, store.password) == ("postgresql://ccc@db:5432/ccc", "s3cret")


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


STANDARDS_MISTAKES = {
    "a percent sign": ("service_level_target: 80%", 3, 25,
                       "standards.service_level_target: expected a number, got '80%'"),
    "a negative threshold": ("max_talk_seconds: -5", 3, 21,
                             "standards: max_talk_seconds: expected a number of seconds >= 0, got -5.0"),
    "a target above one": ("service_level_target: 80", 3, 25,
                           "standards: service_level_target: expected a fraction from 0 to 1 (0.8 for 80%), got 80.0"),
    "text": ("short_abandon_seconds: five", 3, 26,
             "standards.short_abandon_seconds: expected a number, got 'five'"),
    "an unknown standard": ("max_ring_seconds: 5", 3, 3,
                            "standards: unknown key 'max_ring_seconds' (expected one of: max_acw_seconds,"
                            " max_hold_seconds, max_talk_seconds, max_wait_seconds, service_level_seconds,"
                            " service_level_target, short_abandon_seconds)"),
}


@pytest.mark.parametrize("case", sorted(STANDARDS_MISTAKES))
def test_standards_are_type_checked_with_exact_messages(case: str, tmp_path: Path) -> None:
    line_text, line, column, message = STANDARDS_MISTAKES[case]
    path = tmp_path / "controller.yaml"
    path.write_text(f"standards:\n  service_level_seconds: 20\n  {line_text}\n")
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    assert raised.value.problems == [f"{path}:{line}:{column}: {message}"]


def test_standards_are_read_as_numbers() -> None:
    standards = load_config(REPO / "demo" / "controller.yaml").standards
    assert (standards.service_level_seconds, standards.service_level_target) == (20.0, 0.8)
    assert isinstance(standards.max_wait_seconds, float)


def test_an_unknown_top_level_key_names_the_keys_a_file_may_use(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("http: {port: 8080}\ndid: {'4008001234': hotline}\n")
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    keys = sorted(f.name for f in dataclasses.fields(Config) if f.name != "source")  # `source` is internal
    assert raised.value.problems == [f"{path}:2:1: unknown key 'did' (expected one of: {', '.join(keys)})"]
    assert "dids" in keys and "source" not in raised.value.problems[0]


def test_source_is_not_a_key_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("source: /etc/passwd\n")
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    assert raised.value.problems[0].startswith(f"{path}:1:1: unknown key 'source' (expected one of: acd, ")


FLOW_A = 'flow: a\ndids: ["4008001234", "4008005555"]\nnodes:\n  x: {type: hangup}\n'
FLOW_B = 'flow: b\nnodes:\n  x: {type: hangup}\n'


def test_configured_dids_override_the_flows_own(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "a.yaml").write_text(FLOW_A)
    (tmp_path / "flows" / "b.yaml").write_text(FLOW_B)
    path = tmp_path / "controller.yaml"
    path.write_text("ivr: {flows_dir: flows}\ndids:\n  \"4008001234\": b\n  \"4008009999\": a\n")
    config = load_config(path)
    repository = FlowRepository(Path(config.ivr.flows_dir), did_overrides=config.dids, config_source=config.source)
    assert repository.load().ok
    served = {did: flow.id for did in ("4008001234", "4008005555", "4008009999", "4008000000")
              if (flow := repository.flow_for_did(did)) is not None}
    assert served == {"4008001234": "b", "4008005555": "a", "4008009999": "a"}


def test_a_did_mapped_to_a_missing_flow_is_an_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "a.yaml").write_text(FLOW_A)
    path = tmp_path / "controller.yaml"
    path.write_text("ivr: {flows_dir: flows}\ndids:\n  \"4008001234\": a\n  \"4008006666\": hotlin\n")
    config = load_config(path)
    repository = FlowRepository(Path(config.ivr.flows_dir), did_overrides=config.dids, config_source=config.source)
    result = repository.load()
    assert [str(error) for error in result.errors] == [
        f"{path}:4:17: dids: 4008006666 goes to flow 'hotlin', which does not exist (loaded: a)"]
    assert repository.snapshot.flows == {}  # refused: nothing went live
    (tmp_path / "flows" / "hotlin.yaml").write_text(FLOW_B.replace("flow: b", "flow: hotlin"))
    assert repository.reload().ok and repository.flow_for_did("4008006666") is not None


@pytest.mark.parametrize(("text", "expected"), [
    ("${CCC_T_SET}", "set"), ("${CCC_T_UNSET}", ""), ("${CCC_T_UNSET:-d}", "d"), ("${CCC_T_SET:-d}", "set"),
    ("${CCC_T_UNSET:-${CCC_T_SET}/x}", "set/x"), ("${CCC_T_UNSET:-${CCC_T_UNSET2:-/a}/b}/c", "/a/b/c"),
    ("${CCC_T_SET:-${CCC_T_UNSET2:-/a}/b}/c", "set/c"), ("${CCC_T_DOLLAR}", "${CCC_T_SET}"),  # not expanded twice
    ("${CCC_T_UNSET:-}x", "x"), ("a${CCC_T_SET}b${CCC_T_UNSET:-c}", "asetbc"), ("${unclosed", "${unclosed"),
])
def test_environment_values_with_nested_defaults(text: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller.settings import expand_env

    monkeypatch.setenv("CCC_T_SET", "set")
    monkeypatch.setenv("CCC_T_DOLLAR", "${CCC_T_SET}")
    monkeypatch.delenv("CCC_T_UNSET", raising=False)
    monkeypatch.delenv("CCC_T_UNSET2", raising=False)
    assert expand_env(text) == expected


def test_the_demo_finds_the_sandbox_without_ccc_sandbox_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ccctl doctor --config demo/controller.yaml` from a plain shell looks where `make sandbox` built the root."""
    monkeypatch.delenv("CCC_SANDBOX_ROOT", raising=False)
    monkeypatch.setenv("CCC_SANDBOX_DIR", "/srv/sandbox")
    sounds_dir = load_config(REPO / "demo" / "controller.yaml").asterisk.sounds_dir
    assert sounds_dir == "/srv/sandbox/root/usr/share/asterisk/sounds"
    monkeypatch.delenv("CCC_SANDBOX_DIR")
    monkeypatch.setenv("HOME", "/home/user")
    config = load_config(REPO / "demo" / "controller.yaml")
    assert config.asterisk.sounds_dir == "/home/user/.cache/ccc-sandbox/root/usr/share/asterisk/sounds"
    assert config.asterisk.recordings_dir == "/home/user/.cache/ccc-sandbox/root/var/spool/asterisk/recording"
    monkeypatch.setenv("CCC_SANDBOX_ROOT", "/r")
    assert load_config(REPO / "demo" / "controller.yaml").asterisk.sounds_dir == "/r/usr/share/asterisk/sounds"


def test_escalation_steps_and_strategies_load_as_written(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("""acd:
  queues:
    - name: support
      strategy: weighted_idle
      skills: {support: 1}
      escalation:
        - {after: 0, min_level: 7, max_penalty: 0}
        - {after: 20, min_level: 4}
        - {after: 60, min_level: 1}
        - {after: 120, overflow: "queue:backup"}
    - name: backup
      strategy: fewest_calls
      fewest_calls_window: 1800
""")
    from controller.acd.model import EscalationStep
    from controller.plugins.acd.services import queue_settings
    support, backup = (queue_settings(q) for q in load_config(path).acd.queues)
    assert support.strategy == "weighted_idle" and support.escalation == (
        EscalationStep(0, 7, 0), EscalationStep(20, 4), EscalationStep(60, 1),
        EscalationStep(120, overflow="queue:backup"))
    assert backup.fewest_calls_window == 1800 and backup.escalation == () and backup.estimate_window == 1800

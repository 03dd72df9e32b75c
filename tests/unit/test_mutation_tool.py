"""tools/mutation.py (`make mutate`): the kill rate it reports, and how it keeps the accepted
equivalent mutants honest (a changed, killed or vanished mutant makes its entry stale)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = "controller/reports/erlang.py"
PREFIX = "controller.reports.erlang.x_traffic__mutmut_"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", REPO / "tools" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The tool reading a made-up last run of erlang.py: mutants 1–2 killed, 3 timed out, 4–6 survived, 7 no test."""
    mutation = load_tool()
    monkeypatch.setattr(mutation, "MUTANTS", tmp_path / "mutants")
    monkeypatch.setattr(mutation, "EQUIVALENT_FILE", tmp_path / "equivalent.txt")
    codes = {f"{PREFIX}{n}": code for n, code in enumerate([1, 3, 36, 0, 0, 0, 33], start=1)}
    meta = tmp_path / "mutants" / (MODULE + ".meta")
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    monkeypatch.setattr(mutation, "mutant_diff", lambda mutant: f"-    a = 1\n+    a = {mutant[-1]}\n")
    return mutation


def accept(tool: ModuleType, *lines: str) -> None:
    tool.EQUIVALENT_FILE.write_text("# accepted\n" + "\n".join(lines) + "\n")


def test_kill_rate_counts_timeouts_as_killed_and_untested_code_as_survivors(tool: ModuleType) -> None:
    (result,), stale = tool.collect([MODULE], {})
    assert (dict(result.counts), stale) == ({"killed": 2, "timeout": 1, "survived": 3, "no tests": 1}, [])
    assert result.kill_rate == pytest.approx(100 * 3 / 7)
    assert [m for m, _ in result.survivors] == [f"{PREFIX}{n}" for n in (4, 5, 6, 7)]


def test_an_accepted_equivalent_leaves_the_rate_and_a_changed_one_counts_again(tool: ModuleType) -> None:
    good = tool.fingerprint(tool.mutant_diff(f"{PREFIX}4"))
    accept(tool, f"{PREFIX}4 {good} cannot change anything",
           f"{PREFIX}5 0000000000 accepted when it was another change")
    (result,), stale = tool.collect([MODULE], tool.load_equivalents())
    assert result.equivalent == [f"{PREFIX}4"]
    assert result.kill_rate == pytest.approx(100 * 3 / 6)
    assert stale == [f"{PREFIX}5: the mutant changed since it was accepted (fingerprint differs)"]


def test_entries_for_killed_or_vanished_mutants_are_stale_and_fail_the_report(
        tool: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    accept(tool, f"{PREFIX}1 abc killed now", f"{PREFIX}99 abc renamed away")
    _, stale = tool.collect([MODULE], tool.load_equivalents())
    assert stale == [f"{PREFIX}1: accepted as equivalent but now killed: remove the entry",
                     f"{PREFIX}99: no such mutant any more"]
    assert tool.report([MODULE], show_diffs=False, fail_under=None) == 1
    assert "stale equivalent entry" in capsys.readouterr().out


def test_fail_under_and_a_clean_report(tool: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.report([MODULE], show_diffs=False, fail_under=None) == 0
    assert tool.report([MODULE], show_diffs=False, fail_under=90) == 1  # 42.9 % < 90 %
    out = capsys.readouterr().out
    assert f"survived  {PREFIX}4" in out and f"no tests  {PREFIX}7" in out and "42.9%" in out


def test_entries_need_a_reason_and_modules_must_exist(tool: ModuleType) -> None:
    accept(tool, f"{PREFIX}4 abc")
    with pytest.raises(SystemExit, match="expected `MUTANT FINGERPRINT reason`"):
        tool.load_equivalents()
    with pytest.raises(SystemExit, match="no such module: controller/nope"):
        tool.source_files(["controller/nope"])
    assert tool.module_glob("controller/acd") == "controller.acd.*"
    assert tool.module_glob("controller/ivr/expr.py") == "controller.ivr.expr.*"

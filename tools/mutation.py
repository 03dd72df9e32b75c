#!/usr/bin/env python3
"""`make mutate`: mutation testing of the decision code, with a kill rate per module.

mutmut (configured in pyproject.toml, `[tool.mutmut]`) makes small changes to the code one at a
time (a flipped comparison, an off-by-one, a dropped call) and runs the unit tests that reach the
changed function. A mutant the tests notice is *killed*; one they do not notice *survived*: either a
test is missing, or the change does not alter behaviour (an *equivalent* mutant). Equivalent
mutants are listed by hand in tests/mutation/equivalent.txt, each with the reason, and are left out
of the kill rate; every other survivor counts against it, including mutants no unit test reaches.

    tools/mutation.py run [MODULE ...]   fresh run of the given modules (default: all), then the report
    tools/mutation.py report [MODULE ...] the report of the last run
    tools/mutation.py show MUTANT         the mutant's diff and its fingerprint for equivalent.txt

A MODULE is a path: `controller/acd` (a package) or `controller/ivr/expr.py` (one file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTANTS = REPO / "mutants"
EQUIVALENT_FILE = REPO / "tests" / "mutation" / "equivalent.txt"
DEFAULT_MODULES = (
    "controller/acd",
    "controller/reports",
    "controller/ivr/expr.py",
    "controller/ivr/flow.py",
    "controller/ivr/nodes",
    "controller/http/server.py",
)

# mutmut's exit codes of a mutant's test run (mutmut/stats.py), folded into what the report shows.
KILLED_CODES = {1, 3, 37}  # a test failed, pytest errored, the type checker refused the mutant
TIMEOUT_CODES = {36, -24, 24, 152, 255}  # the tests ran far longer than on the original: counted as killed
SURVIVED_CODES = {0}
NO_TESTS_CODES = {33, 5}  # no unit test reaches the function: counted as a survivor
SKIPPED_CODES = {34}


@dataclass(frozen=True)
class Equivalent:
    mutant: str
    fingerprint: str
    reason: str


@dataclass
class ModuleResult:
    module: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, "survived" | "no tests")
    equivalent: list[str] = field(default_factory=list)

    @property
    def judged(self) -> int:
        """Mutants that count: all but the equivalent, skipped and not yet run ones."""
        return self.counts["killed"] + self.counts["timeout"] + self.counts["survived"] + self.counts["no tests"]

    @property
    def kill_rate(self) -> float:
        killed = self.counts["killed"] + self.counts["timeout"]
        return 100.0 * killed / self.judged if self.judged else 100.0


def status_of(exit_code: int | None) -> str:
    if exit_code is None:
        return "not run"
    if exit_code in KILLED_CODES:
        return "killed"
    if exit_code in TIMEOUT_CODES:
        return "timeout"
    if exit_code in SURVIVED_CODES:
        return "survived"
    if exit_code in NO_TESTS_CODES:
        return "no tests"
    if exit_code in SKIPPED_CODES:
        return "skipped"
    return "suspicious"  # a crash of the test run itself: shown, and not counted as killed


def module_glob(module: str) -> str:
    """`controller/acd` -> `controller.acd.*`; `controller/ivr/expr.py` -> `controller.ivr.expr.*`."""
    dotted = module.strip("/").removesuffix(".py").replace("/", ".")
    return f"{dotted}.*"


def source_files(modules: list[str]) -> list[Path]:
    files: list[Path] = []
    for module in modules:
        path = REPO / module
        if path.is_dir():
            files.extend(sorted(p.relative_to(REPO) for p in path.rglob("*.py")))
        elif path.is_file():
            files.append(path.relative_to(REPO))
        else:
            raise SystemExit(f"mutation: no such module: {module}")
    return files


def fingerprint(diff: str) -> str:
    """A short hash of the changed lines only: it survives renumbering, not a change of the mutation."""
    changed = [
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return hashlib.sha256("\n".join(changed).encode()).hexdigest()[:10]


def mutant_diff(mutant: str) -> str:
    """The mutant's diff against the original function, as `mutmut show` prints it."""
    os.chdir(REPO)  # mutmut reads pyproject.toml and mutants/ relative to the working directory
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(mutant)


def load_equivalents() -> dict[str, Equivalent]:
    """tests/mutation/equivalent.txt: `MUTANT FINGERPRINT reason…`, `#` starts a comment line."""
    equivalents: dict[str, Equivalent] = {}
    if not EQUIVALENT_FILE.exists():
        return equivalents
    for number, raw in enumerate(EQUIVALENT_FILE.read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=2)
        if len(parts) < 3:
            raise SystemExit(f"{EQUIVALENT_FILE}:{number}: expected `MUTANT FINGERPRINT reason`, got {line!r}")
        equivalents[parts[0]] = Equivalent(parts[0], parts[1], parts[2])
    return equivalents


def exit_codes(path: Path) -> dict[str, int | None]:
    meta = MUTANTS / (str(path) + ".meta")
    if not meta.exists():
        return {}
    codes: dict[str, int | None] = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    return codes


def collect(modules: list[str], equivalents: dict[str, Equivalent]) -> tuple[list[ModuleResult], list[str]]:
    """Results per module, and the equivalent.txt entries that no longer match their mutant."""
    results: list[ModuleResult] = []
    stale: list[str] = []
    seen: set[str] = set()
    for path in source_files(modules):
        result = ModuleResult(str(path))
        codes = exit_codes(path)
        seen.update(codes)
        for mutant, code in sorted(codes.items(), key=lambda item: natural_key(item[0])):
            status = status_of(code)
            entry = equivalents.get(mutant)
            if entry is not None and status in ("survived", "no tests"):
                if fingerprint(mutant_diff(mutant)) == entry.fingerprint:
                    result.equivalent.append(mutant)
                    result.counts["equivalent"] += 1
                    continue
                stale.append(f"{mutant}: the mutant changed since it was accepted (fingerprint differs)")
            elif entry is not None and status in ("killed", "timeout"):
                stale.append(f"{mutant}: accepted as equivalent but now killed: remove the entry")
            result.counts[status] += 1
            if status in ("survived", "no tests"):
                result.survivors.append((mutant, status))
        results.append(result)
    prefixes = tuple(module_glob(m).removesuffix("*") for m in modules)
    if seen:  # entries of these modules that name no mutant of the run: the code changed under them
        stale += [f"{name}: no such mutant any more" for name in equivalents
                  if name.startswith(prefixes) and name not in seen]
    return results, stale


def natural_key(mutant: str) -> tuple[str, int]:
    name, _, number = mutant.rpartition("_")
    return (name, int(number) if number.isdigit() else 0)


def report(modules: list[str], *, show_diffs: bool, fail_under: float | None) -> int:
    equivalents = load_equivalents()
    results, stale = collect(modules, equivalents)
    if not any(r.counts for r in results):
        print("mutation: no results yet: run `make mutate` first")
        return 1
    if show_diffs:
        for result in results:
            for mutant, status in result.survivors:
                print(f"--- {status}: {mutant}  (fingerprint {fingerprint(mutant_diff(mutant))})")
                print(mutant_diff(mutant))
                print()
    else:
        for result in results:
            for mutant, status in result.survivors:
                print(f"{status:9} {mutant}")
        print()
    for line in stale:
        print(f"stale equivalent entry: {line}")
    failing = False
    rows = [r for r in results if r.counts]
    for module in modules:
        inside = [r for r in rows if Path(r.module) == Path(module) or Path(module) in Path(r.module).parents]
        if len(inside) > 1:
            total = ModuleResult(f"{module} (all)")
            for r in inside:
                total.counts.update(r.counts)
            rows.append(total)
    width = max(len(r.module) for r in rows) + 1
    columns = f"{'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} {'equiv.':>6} {'kill rate':>9}"
    header = f"{'module':{width}} {columns}"
    print(header)
    print("-" * len(header))
    for result in rows:
        c = result.counts
        print(
            f"{result.module:{width}} {c['killed']:6} {c['timeout']:7} {c['survived']:8} {c['no tests']:8}"
            f" {c['equivalent']:6} {result.kill_rate:8.1f}%"
        )
        if c["suspicious"] or c["not run"] or c["skipped"]:
            print(f"{'':{width}} (also: {c['suspicious']} suspicious, {c['not run']} not run, {c['skipped']} skipped)")
        if fail_under is not None and result.judged and result.kill_rate < fail_under:
            failing = True
    print("kill rate = (killed + timeout) / (all - equivalent); `no tests` counts as a survivor")
    print("see a survivor: tools/mutation.py show MUTANT  (README: Tests > Mutation testing)")
    return 1 if failing or stale else 0


def run(modules: list[str], jobs: int) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    shutil.rmtree(MUTANTS, ignore_errors=True)  # a fresh copy: no result of an older source is reused
    command = [str(mutmut), "run", "--max-children", str(jobs), *(module_glob(m) for m in modules)]
    MUTANTS.mkdir()
    log = MUTANTS / "run.log"
    print(f"mutation: {' '.join(command[1:])}  (progress in {log.relative_to(REPO)})", flush=True)
    with log.open("w") as out:
        completed = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        print(log.read_text("utf-8", errors="replace")[-3000:])
        print(f"mutation: mutmut failed ({completed.returncode}), see {log.relative_to(REPO)}")
        return completed.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        command = sub.add_parser(name)
        command.add_argument("modules", nargs="*", help="paths such as controller/acd (default: all)")
        command.add_argument("--diffs", action="store_true", help="print each survivor's diff")
        command.add_argument("--fail-under", type=float, help="exit 1 if a module's kill rate is below this")
        if name == "run":
            command.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    show = sub.add_parser("show")
    show.add_argument("mutant")
    args = parser.parse_args(argv)
    if args.command == "show":
        try:
            diff = mutant_diff(args.mutant)
        except FileNotFoundError:
            print(f"mutation: no mutant {args.mutant} in mutants/ (names come from the last `make mutate`)")
            return 1
        print(diff)
        print("\nfor tests/mutation/equivalent.txt:")
        print(f"{args.mutant} {fingerprint(diff)} <why no input can tell it from the original>")
        return 0
    modules = args.modules or list(DEFAULT_MODULES)
    for module in modules:
        source_files([module])  # unknown paths are refused before the long run
    if args.command == "run" and (code := run(modules, args.jobs)) != 0:
        return code
    return report(modules, show_diffs=args.diffs, fail_under=args.fail_under)


if __name__ == "__main__":
    sys.exit(main())

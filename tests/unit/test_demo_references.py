"""What the demo configuration and the shipped flows point at exists, and the README lists what `make` installs.

A new user reads these files first: a comment that names a file, a folder, a prompt or a README
section that is not there sends them looking for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "demo" / "controller.yaml", *sorted((REPO / "ivr_flows").glob("*.yaml"))]
# A relative path (a/b, ./a, ../a/b.md); not the tail of a URL, of sound:ccc/x or of ${VAR}/x.
PATH = re.compile(r"(?<![\w:/.}$-])(?:\.\.?/)?[\w.-]+(?:/[\w.-]+)+/?")
FILE_SUFFIXES = {".md", ".yaml", ".yml", ".conf", ".py", ".json", ".txt", ".wav", ".sh", ".toml"}
README_SECTION = re.compile(r"README(?:'s)? \"([^\"]+)\"")
CCC_SOUND = re.compile(r"sound:ccc/([\w-]+)")


def path_references(text: str) -> list[str]:
    """The tokens of `text` that name a file or folder (not `Asia/Shanghai`, not a URL's path)."""
    found = []
    for match in PATH.finditer(text):
        token = match.group().rstrip(".")
        first = token.split("/")[0]
        if token.startswith(("./", "../")) or Path(token.rstrip("/")).suffix in FILE_SUFFIXES \
                or (REPO / first).exists():
            found.append(token)
    return found


def resolves(source: Path, reference: str) -> bool:
    """./ and ../ are relative to the file (as the configuration reads them), the rest to the repository;
    var/ is where a run keeps its data (created at run time, never shipped)."""
    target = (source.parent if reference.startswith(".") else REPO) / reference
    return target.resolve().is_relative_to(REPO / "var") or target.exists()


def test_the_scanner_finds_references_and_skips_what_is_not_one() -> None:
    text = ('# see docs/ivr.md. and README "IVR flows"\nflows_dir: ../ivr_flows\ntimezone: Asia/Shanghai\n'
            'url: "http://127.0.0.1:8090/customer?number={caller}"\nsounds: ${ROOT:-}/usr/share/sounds\n'
            'greeting: sound:ccc/welcome  # POST /api/calls/{id}/play; controller/ivr/flow.py\n')
    assert path_references(text) == ["docs/ivr.md", "../ivr_flows", "controller/ivr/flow.py"]
    assert README_SECTION.findall(text) == ["IVR flows"]
    assert CCC_SOUND.findall(text) == ["welcome"]
    assert not resolves(REPO / "demo" / "controller.yaml", "docs/ivr.md")
    assert resolves(REPO / "demo" / "controller.yaml", "../ivr_flows")
    assert resolves(REPO / "demo" / "controller.yaml", "../var/demo")  # a run's data directory


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: str(path.relative_to(REPO)))
def test_every_file_prompt_and_readme_section_referenced_exists(source: Path) -> None:
    text = source.read_text()
    headings = [line.lstrip("#").strip() for line in (REPO / "README.md").read_text().splitlines()
                if line.startswith("#")]
    prompts = yaml.safe_load((REPO / "controller" / "deploy" / "templates" / "ccc-sounds.yaml").read_text())
    missing = [ref for ref in path_references(text) if not resolves(source, ref)]
    missing += [f'README "{name}"' for name in README_SECTION.findall(text)
                if not any(heading.startswith(name) for heading in headings)]
    missing += [f"sound:ccc/{name} (controller/deploy/templates/ccc-sounds.yaml)" for name in CCC_SOUND.findall(text)
                if name not in prompts]
    assert not missing, f"{source.relative_to(REPO)} refers to what does not exist: {missing}"


def test_readme_lists_every_package_make_installs() -> None:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^APT_PACKAGES := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert match, "no APT_PACKAGES in the Makefile"
    packages = match.group(1).replace("\\\n", " ").split()
    node = re.search(r"^NODE_PACKAGES := (.*)$", makefile, re.MULTILINE)
    packages += node.group(1).split() if node else []
    readme = (REPO / "README.md").read_text()
    section = readme.split("### What `make` installs", 1)[1].split("\n## ", 1)[0]
    assert "baresip" in packages and "chromium" in packages
    assert [p for p in packages if f"`{p}`" not in section] == []

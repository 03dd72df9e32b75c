"""API fuzzing from /openapi.json: schemathesis against a live controller, once per role.

The document is the contract: every answer must be a status the operation documents (and no 5xx),
with the documented content type and schema, for valid and invalid input alike. A fixed seed makes
a failure reproducible: the output names the operation and gives the `curl` line to replay it.

Nothing is excluded: the controller must stay sane whatever the fuzzer sends. Click-to-dial,
transfer and conference are limited to the demo's allowed prefixes (`dialing.allowed_prefixes`), so
random numbers are refused before anything is dialled; afterwards no call is left on Asterisk.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ARI, ControllerProcess, ari_get, demo_config

pytestmark = pytest.mark.e2e
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20261126
EXAMPLES = 12  # per operation and role: 4 roles x ~48 operations, well under a minute in all
ROLE_TOKENS = {"admin": "demo-admin-token", "supervisor": "demo-supervisor-token",
               "integration": "demo-integration-token", "agent": "demo-agent-1001-token"}


def fuzz(url: str, token: str, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
         "--url", url,
         "-H", f"Authorization: Bearer {token}", "--checks", "all",
         # Click-to-dial answers 202 with a call that rings nowhere (its number is refused): a 202 is not a
         # resource to fetch back, and our auth is per role, not per object id.
         "--exclude-checks", "use_after_free,ensure_resource_availability",
         "--seed", str(SEED), "-n", str(EXAMPLES), "--workers", "1", "--phases", "examples,coverage,fuzzing",
         "--request-timeout", "60", "--no-shrink", "--warnings", "off",
         "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, timeout=240,
        cwd=report.parent)  # its cache (.schemathesis/, crashes it would replay) stays out of the repository


@pytest.mark.parametrize("role", list(ROLE_TOKENS))
async def test_fuzzing_every_operation_finds_no_server_error_nor_undocumented_status(
        fresh_asterisk: Path, tmp_path: Path, role: str) -> None:
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path))
    await process.start()
    try:
        result = await asyncio.to_thread(fuzz, process.url, ROLE_TOKENS[role], tmp_path / "junit.xml")
        tail = result.stdout[-12000:]
        assert result.returncode == 0, f"schemathesis as {role} (seed {SEED}):\n{tail}\n{result.stderr[-2000:]}"
        assert "passed" in tail  # it really ran operations
        assert process.process is not None and process.process.poll() is None  # still alive
        assert (await process.health()) is not None
        log = process.log.read_text()
        assert "unhandled error" not in log and "Traceback" not in log, log[-4000:]  # nothing crashed inside
    finally:
        process.terminate()
    assert ARI  # the sandbox was used
    assert await ari_get("/channels") == []  # nothing dialled by the fuzzer is left ringing

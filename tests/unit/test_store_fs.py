"""The store on real file systems that fail: a full disk (a 2 MB tmpfs) and a read-only one. Each
scenario runs in a child process with its own mount namespace (`unshare --mount`, root only), which
reports what it saw as JSON; the assertions are here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare to mount a file system")

COMMON = """
import asyncio, json, logging, os, stat, sys
from pathlib import Path
from controller.store import db
from controller.store.db import Store, StoreUnavailable, StoreNotWritable
db.RETRY_SECONDS = (0.05, 0.2)
db.SPILL_RESERVE_BYTES = 256 * 1024
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
d = Path(sys.argv[1])
seen = {}
PAD = "x" * 2000

def fill():
    with open(d / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\\0" * 65536)
                f.flush()
        except OSError:
            pass

async def count(store):
    return (await store.fetchone("SELECT count(*) FROM t"))[0]
"""

DISK_FULL = COMMON + """
async def main():
    store = Store(d / "s.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    await store.execute("CREATE TABLE t (n INTEGER, pad TEXT)")
    fill()
    for n in range(100):
        store.write("INSERT INTO t VALUES (?, ?)", (n, PAD))
    try:
        await store.flush()
        seen["flush"] = "ok"
    except StoreUnavailable as exc:
        seen["flush"] = str(exc)
    seen["health_full"] = store.health()
    seen["read_while_full"] = await count(store)
    os.unlink(d / "filler")
    for _ in range(100):
        if not store._pending:
            break
        await asyncio.sleep(0.05)
    seen["after_room"] = await count(store)
    seen["health_after"] = store.health()["status"]
    fill()  # full again, then a graceful stop
    for n in range(100, 150):
        store.write("INSERT INTO t VALUES (?, ?)", (n, PAD))
    writer.cancel()
    await store.close(retry_seconds=0.3)
    seen["spill_mode"] = oct(stat.S_IMODE(store.spill_path.stat().st_mode)) if store.spill_path.exists() else None
    os.unlink(d / "filler")
    again = Store(d / "s.sqlite3")
    await again.open()
    seen["after_restart"] = await count(again)
    seen["spill_left"] = again.spill_path.exists()
    await again.close()

asyncio.run(main())
print(json.dumps(seen))
"""

READ_ONLY = COMMON + """
async def main():
    store = Store(d / "s.sqlite3")
    try:
        await store.open()
        seen["opened"] = True
    except StoreNotWritable as exc:
        seen["error"] = str(exc)

asyncio.run(main())
print(json.dumps(seen))
"""


def run_in_own_mounts(tmp_path: Path, mount: str, script: str) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (tmp_path / "scenario.py").write_text(textwrap.dedent(script))
    shell = f"{mount} && exec {sys.executable} {tmp_path / 'scenario.py'} {data}"
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1])) | {"log": done.stderr}


def test_a_full_disk_degrades_then_recovers_and_a_stop_saves_what_is_unsaved(tmp_path: Path) -> None:
    seen = run_in_own_mounts(tmp_path, f"mount -t tmpfs -o size=2m tmpfs {tmp_path / 'data'}", DISK_FULL)
    assert "full" in seen["flush"] and "cannot rollback" not in seen["log"]
    assert seen["health_full"]["status"] == "degraded" and seen["health_full"]["pending"] == 100
    assert seen["read_while_full"] == 0  # reads answer (from what is committed) while writes cannot
    assert seen["after_room"] == 100 and seen["health_after"] == "ok"  # nothing lost once there is room
    # A stop while the disk is full: the reserved space holds the spill file; the next start commits it.
    assert seen["spill_mode"] == "0o600", seen["log"][-2000:]
    assert "50 statements could not be committed" in seen["log"] and "LOST" not in seen["log"]
    assert seen["after_restart"] == 150 and seen["spill_left"] is False


def test_a_read_only_store_is_refused_at_open_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import asyncio
        from controller.store.db import Store
        async def main():
            store = Store({str(data / 's.sqlite3')!r})
            await store.open()
            await store.execute("CREATE TABLE t (n INTEGER)")
            await store.close()
        asyncio.run(main())""")], cwd=REPO, check=True, timeout=60)
    seen = run_in_own_mounts(tmp_path, f"mount --bind {data} {data} && mount -o remount,ro,bind {data}", READ_ONLY)
    assert "opened" not in seen
    assert f"the store's directory {data} is not writable" in seen["error"] or "cannot be written" in seen["error"]

"""The store on real file systems that fail: a full disk (a 2 MB tmpfs) and a read-only one. Each
scenario runs in a child process with its own mount namespace (`unshare --mount`, root only), which
reports what it saw as JSON; the assertions are here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    # Unbuffered: a buffered file would flush its tail at close and raise ENOSPC out of the `with`.
    with open(d / "filler", "wb", buffering=0) as f:
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


AS_NOBODY = """
import asyncio, os, sys
from controller.store.db import Store, StoreNotWritable
async def main(path, mode):
    store = Store(path)
    try:
        await store.open()
    except StoreNotWritable as exc:
        print("refused:", exc)
        return
    await store.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    await store.execute("INSERT INTO t VALUES (1)")
    if mode == "create":
        os._exit(0)  # a crash: -wal and -shm stay behind
    print("opened and wrote")
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.skipif(not (shutil.which("setpriv") and Path("/usr/bin/python3").exists()),
                    reason="needs setpriv and a system python to run as another user")
def test_files_made_read_only_for_the_controllers_user_are_refused_at_open(tmp_path: Path) -> None:
    """Run as `nobody` (root may write anything): the files' modes are what the controller's user gets."""
    data = Path(tempfile.mkdtemp(prefix="ccc-store-"))
    try:
        data.chmod(0o755)
        os.chown(data, 65534, 65534)
        script = data / "scenario.py"
        script.write_text(AS_NOBODY)

        def as_nobody(mode: str) -> str:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
                       str(script), str(data / "s.sqlite3"), mode]
            done = subprocess.run(command, cwd="/", timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                                  capture_output=True, text=True)
            return done.stdout + done.stderr

        as_nobody("create")
        assert (data / "s.sqlite3-wal").exists()
        assert "opened and wrote" in as_nobody("open")  # the positive twin: writable files open
        for file in data.glob("s.sqlite3*"):
            file.chmod(0o444)
        output = as_nobody("open")
        assert "refused: the store file" in output and "cannot be written (Permission denied)" in output, output
    finally:
        shutil.rmtree(data)

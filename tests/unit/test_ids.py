"""Unique ids (controller/ids.py): unique within a process, across processes and in a forked child."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from controller.ari.client import new_id
from controller.ids import unique_hex

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_have_uuid4_hex_shape_and_never_repeat_in_a_process() -> None:
    ids = [unique_hex() for _ in range(10_000)]
    assert all(HEX32.fullmatch(one) for one in ids)
    assert len(set(ids)) == len(ids)
    playback = new_id("pb")
    assert playback.startswith("pb-") and HEX32.fullmatch(playback.removeprefix("pb-"))


def test_another_process_draws_other_ids() -> None:
    code = "from controller.ids import unique_hex; print(*(unique_hex() for _ in range(3)))"
    theirs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
              for _ in range(2)]
    assert len(theirs[0]) == 3 and len(theirs[1]) == 3
    ours = [unique_hex() for _ in range(3)]
    assert len(set(ours) | set(theirs[0]) | set(theirs[1])) == 9


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(reader)
        os.write(writer, " ".join(unique_hex() for _ in range(3)).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [unique_hex() for _ in range(3)]
    assert len(child) == 3
    assert not set(child) & set(parent)

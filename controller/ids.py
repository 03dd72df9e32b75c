"""Unique ids for ARI objects, calls and records: a random per-process tag and a counter.

`uuid.uuid4()` reads 16 bytes from the kernel (a system call) for each id, and a call takes several (its
playbacks, legs, bridge, the call itself). These ids are no secrets, only unique: 64 random bits drawn once per
process (again in a forked child) keep them unique across processes and restarts, and the counter within one.
An id is 32 lowercase hex digits, as `uuid4().hex` is, so stored ids and what reads them keep their shape.
"""

from __future__ import annotations

import itertools
import os

_tag = ""
_counter = itertools.count()


def _new_process() -> None:
    global _tag, _counter
    _tag = os.urandom(8).hex()
    _counter = itertools.count()


_new_process()
os.register_at_fork(after_in_child=_new_process)


def unique_hex() -> str:
    """32 hex digits never given out before, by this process or another (e.g. "3f2a9c…0000000000000007")."""
    return f"{_tag}{next(_counter):016x}"

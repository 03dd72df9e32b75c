"""The live flows: loaded from a directory, swapped atomically on reload, never half-valid.

A call takes `repository.snapshot` when it starts and runs on it to its end, so a reload changes
what new calls get and never a call in progress. A reload with any error is refused: the errors
are returned and the previous snapshot stays live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from controller.ivr.flow import EMPTY, Flow, FlowError, FlowSet, SoundExists, flow_set, load_flows, sound_prompts


@dataclass(frozen=True)
class LoadResult:
    errors: list[FlowError]
    flows: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


class FlowRepository:
    def __init__(self, flows_dir: Path, sound_exists: SoundExists | None = None) -> None:
        self.flows_dir = flows_dir
        self.sound_exists = sound_exists
        self.snapshot: FlowSet = EMPTY
        self.version = 0
        self.loaded_at: float | None = None  # wall-clock time of the last successful load

    def load(self) -> LoadResult:
        if not self.flows_dir.is_dir():
            return LoadResult([FlowError(str(self.flows_dir), 1, 1, "the flows directory does not exist")], [])
        try:
            flows, errors = load_flows([self.flows_dir], self.sound_exists)
        except OSError as exc:  # the directory cannot be listed (permissions, a vanished mount)
            return LoadResult([FlowError(str(self.flows_dir), 1, 1, f"cannot read the flows: {exc}")],
                              sorted(self.snapshot.flows))
        if errors:
            return LoadResult(errors, sorted(self.snapshot.flows))
        self.snapshot = flow_set(flows)
        self.version += 1
        self.loaded_at = time.time()
        return LoadResult([], sorted(self.snapshot.flows))

    reload = load

    def flow_for_did(self, did: str) -> Flow | None:
        return self.snapshot.flow_for_did(did)


def sound_names_in(flows_dir: str | Path) -> list[str]:
    """Every `sound:` prompt the (valid) flows of a directory use (for `ccctl doctor`)."""
    flows, _ = load_flows([Path(flows_dir)])
    return sorted({name for flow in flows for _, name in sound_prompts(flow) if "{" not in name})

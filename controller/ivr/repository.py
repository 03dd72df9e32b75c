"""The live flows: loaded from a directory, swapped atomically on reload, never half-valid.

A call takes `repository.snapshot` when it starts and runs on it to its end, so a reload changes
what new calls get and never a call in progress. A reload with any error is refused: the errors
are returned and the previous snapshot stays live.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from controller.ivr.flow import EMPTY, Flow, FlowError, FlowSet, SoundExists, flow_set, load_flows, sound_prompts


@dataclass(frozen=True)
class LoadResult:
    errors: list[FlowError]
    flows: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


#: Where a DID of the live configuration that the file does not have is set (README "Administration").
LIVE_DIDS = "live configuration (/api/config/dids)"


class FlowRepository:
    def __init__(self, flows_dir: Path, sound_exists: SoundExists | None = None, *,
                 did_overrides: Mapping[str, str] | None = None, config_source: str = "") -> None:
        """`did_overrides`: the configuration's `dids` (DID -> flow id, from `config_source`), which win
        over the DIDs the flows list themselves."""
        self.flows_dir = flows_dir
        self.sound_exists = sound_exists
        self.did_overrides = dict(did_overrides or {})
        self.config_source = config_source
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
        errors.extend(self._override_errors({flow.id for flow in flows}))
        if errors:
            return LoadResult(errors, sorted(self.snapshot.flows))
        self.snapshot = flow_set(flows, self.did_overrides)
        self.version += 1
        self.loaded_at = time.time()
        return LoadResult([], sorted(self.snapshot.flows))

    reload = load

    def _override_errors(self, flow_ids: set[str]) -> list[FlowError]:
        """A configured DID whose flow does not exist (any more): an error where the DID is set, the
        configuration file's line, or the live configuration for a DID the file does not have."""
        missing = {did: flow_id for did, flow_id in self.did_overrides.items() if flow_id not in flow_ids}
        if not missing:
            return []
        marks = _did_marks(self.config_source)
        loaded = ", ".join(sorted(flow_ids)) or "none"
        return [FlowError(self.config_source or "configuration", *marks[did], message) if did in marks
                else FlowError(LIVE_DIDS, 1, 1, message)
                for did, flow_id in sorted(missing.items())
                for message in [f"dids: {did} goes to flow {flow_id!r}, which does not exist (loaded: {loaded})"]]

    def missing_flows(self, did_overrides: Mapping[str, str]) -> dict[str, str]:
        """The DIDs of `did_overrides` whose flow is not live (DID -> flow id)."""
        return {did: flow_id for did, flow_id in did_overrides.items() if flow_id not in self.snapshot.flows}

    def set_did_overrides(self, did_overrides: Mapping[str, str]) -> None:
        """Live DID mapping (the managed `dids`): the next call's flow follows it; a call already in a
        flow keeps the snapshot it took. The administration refuses a DID whose flow is not live
        (`missing_flows`); one that gets here anyway (flows that failed to load at start) has its calls
        sent to the fallback route, as a DID with no flow."""
        self.did_overrides = dict(did_overrides)
        self.snapshot = flow_set(list(self.snapshot.flows.values()), self.did_overrides)

    def flow_for_did(self, did: str) -> Flow | None:
        return self.snapshot.flow_for_did(did)


def _did_marks(config_source: str) -> dict[str, tuple[int, int]]:
    """Line and column of each DID's value under `dids:` in the configuration file (best effort)."""
    try:
        root = yaml.compose(Path(config_source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    marks: dict[str, tuple[int, int]] = {}
    for key, value in root.value if isinstance(root, yaml.MappingNode) else []:
        if key.value == "dids" and isinstance(value, yaml.MappingNode):
            for did, target in value.value:
                marks[str(did.value)] = (target.start_mark.line + 1, target.start_mark.column + 1)
    return marks


def sound_names_in(flows_dir: str | Path) -> list[str]:
    """Every `sound:` prompt the (valid) flows of a directory use (for `ccctl doctor`)."""
    flows, _ = load_flows([Path(flows_dir)])
    return sorted({name for flow in flows for _, name in sound_prompts(flow) if "{" not in name})

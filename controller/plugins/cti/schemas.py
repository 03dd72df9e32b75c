"""JSON Schemas of the CTI events, built from events.yml (the one place event types are documented)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

_TYPES = {"string": "string", "integer": "integer", "number": "number", "object": "object", "boolean": "boolean"}


def _load() -> dict[str, Any]:
    text = resources.files("controller.plugins.cti").joinpath("events.yml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


EVENT_TYPES: dict[str, Any] = _load()


def _field_schema(spec: str) -> tuple[dict[str, Any], bool]:
    optional = "(optional)" in spec
    kinds = [_TYPES[k.strip()] if k.strip() != "null" else "null"
             for k in spec.replace("(optional)", "").split("|")]
    return {"type": kinds[0] if len(kinds) == 1 else kinds}, not optional


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema one event of this type must satisfy."""
    fields = EVENT_TYPES[event_type].get("data") or {}
    properties, required = {}, []
    for name, spec in fields.items():
        properties[name], is_required = _field_schema(str(spec))
        if is_required:
            required.append(name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event_type,
        "description": EVENT_TYPES[event_type]["doc"],
        "type": "object",
        "required": ["seq", "type", "at", "call_id", "agent_id", "queue", "data"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"const": event_type},
            "at": {"type": "number"},
            "call_id": {"type": ["string", "null"]},
            "agent_id": {"type": ["string", "null"]},
            "queue": {"type": ["string", "null"]},
            "data": {"type": "object", "properties": properties, "required": required},
        },
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    return {event_type: event_schema(event_type) for event_type in EVENT_TYPES}

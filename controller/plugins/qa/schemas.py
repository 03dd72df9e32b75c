"""JSON Schemas of the QA API (README "Quality assurance"): a form's body, a score's body, what GET answers.

The HTTP layer checks the shape (types, bounds, known keys: 400); the service checks what a schema cannot
(a criterion key given twice, points above a criterion's maximum, an unknown recording: 422)."""

from __future__ import annotations

from typing import Any

#: A form's name (the path's) and a criterion's key: short, lower-case, safe in URLs and CSV columns.
FORM_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}(?!\\n)$"}
CRITERION_KEY = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_]{0,39}(?!\\n)$"}
SCORE_ID = {"type": "string", "pattern": "^[0-9a-f]{32}(?!\\n)$"}
MAX_CRITERIA = 50
MAX_COMMENTS = 200
#: A recording's offsets (seconds); a day is longer than any call.
OFFSET = {"type": "number", "minimum": 0, "maximum": 86400}

CRITERION: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["key", "label", "weight", "max_points"],
    "properties": {
        "key": CRITERION_KEY,
        "label": {"type": "string", "minLength": 1, "maxLength": 200,
                  "description": "as supervisors and agents read it"},
        "weight": {"type": "number", "minimum": 0.01, "maximum": 1000,
                   "description": "its share of the score: weight / the sum of the weights"},
        "max_points": {"type": "integer", "minimum": 1, "maximum": 100},
        "critical": {"type": "boolean", "default": False,
                     "description": "no points on it make the whole score 0 (e.g. the caller's identity not checked)"},
    }}
FORM_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["criteria"],
    "properties": {"title": {"type": "string", "maxLength": 200},
                   "criteria": {"type": "array", "minItems": 1, "maxItems": MAX_CRITERIA, "items": CRITERION}}}
FORM: dict[str, Any] = {
    "type": "object", "required": ["name", "version", "title", "criteria", "created_at", "created_by", "retired"],
    "properties": {"name": {"type": "string"}, "version": {"type": "integer"}, "title": {"type": "string"},
                   "criteria": {"type": "array", "items": CRITERION}, "created_at": {"type": "number"},
                   "created_by": {"type": "string"}, "retired": {"type": "boolean"}}}
FORM_CHANGE: dict[str, Any] = {
    "type": "object", "required": ["form", "changed"],
    "properties": {"form": FORM, "changed": {"type": "boolean", "description": "false: the same as the latest "
                                                                               "version, no new one"}}}

COMMENT: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["at", "text"],
    "properties": {"at": {**OFFSET, "description": "seconds into the recording"},
                   "text": {"type": "string", "minLength": 1, "maxLength": 1000}}}
SCORE_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["recording_id", "form", "points"],
    "properties": {
        "recording_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        "form": FORM_NAME,
        "agent_id": {"type": "string", "minLength": 1, "maxLength": 64,
                     "description": "the agent scored: one of the recording's (default: its first)"},
        "points": {"type": "object", "maxProperties": MAX_CRITERIA,
                   "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
                   "description": "every criterion of the form's latest version: its key -> points given"},
        "comments": {"type": "array", "maxItems": MAX_COMMENTS, "items": COMMENT},
        "summary": {"type": "string", "maxLength": 2000},
    }}
SCORE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "recording_id", "call_id", "agent_id", "form", "scorer", "scored_at", "score",
                 "critical_failed", "criteria", "comments", "summary"],
    "properties": {
        "id": {"type": "string"}, "recording_id": {"type": "integer"}, "call_id": {"type": "string"},
        "agent_id": {"type": "string"},
        "form": {"type": "object", "required": ["name", "version", "title"]},
        "scorer": {"type": "string"}, "scored_at": {"type": "number"},
        "score": {"type": "number", "minimum": 0, "maximum": 100}, "critical_failed": {"type": "boolean"},
        "criteria": {"type": "array",
                     "items": {"type": "object", "required": ["key", "label", "points", "max_points"]}},
        "comments": {"type": "array", "items": COMMENT}, "summary": {"type": "string"}}}
REPORT_ROW: dict[str, Any] = {
    "type": "object", "required": ["agent_id", "scored", "average_score", "lowest_criterion", "critical_failed"],
    "properties": {"agent_id": {"type": "string"}, "scored": {"type": "integer"},
                   "average_score": {"type": "number"}, "critical_failed": {"type": "integer"},
                   "lowest_criterion": {"type": "object", "nullable": True,
                                        "required": ["key", "label", "average_percent"]}}}

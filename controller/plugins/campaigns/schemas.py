"""JSON Schemas of the campaigns' API (README "Outbound campaigns")."""

from __future__ import annotations

from controller.outbound.campaign import AMD_HANDLING, DEFAULT_RETRY_SECONDS, DISPOSITIONS
from controller.outbound.pacing import MODES

NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}(?!\\n)$"}
NUMBER = {"type": "string", "minLength": 3, "maxLength": 32}
SECONDS = {"type": "number", "minimum": 0, "maximum": 1e7}
CREATE = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {
        "name": NAME, "mode": {"enum": list(MODES)},
        "agents": {"type": "array", "maxItems": 1000, "items": {"type": "string", "minLength": 1, "maxLength": 64}},
        "caller_id": {"type": "string", "maxLength": 32}, "flow": {"type": "string", "maxLength": 64},
        "region": {"type": "string", "pattern": "^[A-Za-z]{2}(?!\\n)$"},
        "timezone": {"type": "string", "minLength": 1, "maxLength": 64},
        "start_date": {"type": "string", "maxLength": 10}, "end_date": {"type": "string", "maxLength": 10},
        "hours": {"type": "string", "maxLength": 11, "description": "HH:MM-HH:MM, the callee's local time"},
        "allow_holidays": {"type": "boolean"},
        "ring_seconds": {"type": "number", "minimum": 5, "maximum": 120, "description": "30 s is about 6 rings"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
        "retry_seconds": {"type": "object", "additionalProperties": False,
                          "properties": {outcome: SECONDS for outcome in DEFAULT_RETRY_SECONDS}},
        "abandon_cap": {"type": "number", "minimum": 0.001, "maximum": 0.5},
        "wrapup_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
        "ivr_lines": {"type": "integer", "minimum": 1, "maximum": 500,
                      "description": "ivr mode: customers dialled or in the flow at a time"},
        "amd": {"enum": list(AMD_HANDLING), "description": "answering machines: hang up, leave a message, agent"},
        "amd_message": {"type": "string", "maxLength": 500, "description": "amd message: said after the beep"},
    },
}
CONTACTS = {"type": "object", "additionalProperties": False, "required": ["csv"],
            "properties": {"csv": {"type": "string", "minLength": 1, "maxLength": 20_000_000,
                                   "description": "header row with `number` (and name, timezone, custom fields)"}}}
DISPOSITION = {"type": "object", "additionalProperties": False, "required": ["disposition"],
               "properties": {"disposition": {"enum": list(DISPOSITIONS)},
                              "retry_at": {"type": "number", "minimum": 0, "maximum": 1e11,
                                           "description": "callback: when (epoch seconds)"}}}
DNC = {"type": "object", "additionalProperties": False, "required": ["numbers"],
       "properties": {"numbers": {"type": "array", "minItems": 1, "maxItems": 100_000, "items": NUMBER},
                      "campaign": {**NAME, "description": "the campaign's own list (default: the global one)"},
                      "reason": {"type": "string", "maxLength": 200}}}
CAMPAIGN = {"type": "object", "required": ["name", "status", "settings", "stats"]}
PREVIEW = {"type": "object", "required": ["campaign", "contact_no", "offered_at", "screen_pop"]}

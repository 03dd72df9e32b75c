"""JSON schemas of the inbox's and the follow-up tasks' requests and answers (checked by @operation)."""

from __future__ import annotations

from typing import Any

from controller.http.list_query import TIME

ID = {"type": "string", "pattern": "^[0-9a-f]{32}(?!\\n)$"}
ITEM_ID = {"item_id": ID}
TASK_ID = {"task_id": ID}
NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.-]+(?!\\n)$"}
NOTE = {"type": "string", "maxLength": 2000}

ITEM: dict[str, Any] = {"type": "object", "required": ["id", "kind", "caller", "created_at", "duration", "status",
                                                      "queue", "agent_id", "data"]}
ITEMS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": ITEM}}}
STATUS_QUERY = {"status": {"type": "string", "enum": ["open", "new", "assigned", "called_back", "done"],
                           "description": "open: new or assigned (not yet answered)"}}
ASSIGN_BODY = {"type": "object", "additionalProperties": False, "required": ["agent_id"],
               "properties": {"agent_id": NAME}}
CALLBACK_BODY = {"type": "object", "additionalProperties": False,
                 "properties": {"agent_id": {**NAME, "description": "whose phone rings (an agent: their own)"}}}
DONE_BODY = {"type": "object", "additionalProperties": False, "required": ["note"], "properties": {"note": NOTE}}
REPORT = {"type": "object", "required": ["voicemail"]}

TASK: dict[str, Any] = {"type": "object", "required": ["id", "title", "due_at", "status", "agent_id", "queue"]}
TASKS = {"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array", "items": TASK}}}
TASK_BODY = {
    "type": "object", "additionalProperties": False, "required": ["title"],
    "not": {"required": ["agent_id", "queue"]},  # for an agent or a queue, not both
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 500, "description": "what is to be done"},
        "call_id": {"type": "string", "minLength": 1, "maxLength": 64, "description": "the call it follows up"},
        "agent_id": {**NAME, "description": "for whom: an agent (default: the agent creating it)"},
        "queue": {**NAME, "description": "for whom: a queue (any of its agents)"},
        "due_at": {**TIME, "description": "epoch seconds (default: one working day later, Chinese calendar)"},
    },
}
TASK_STATUS_QUERY = {"status": {"type": "string", "enum": ["open", "closed"]}}
COUNTS = {"type": "object", "required": ["open", "overdue"]}

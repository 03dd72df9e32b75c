"""JSON schemas of the fax API's requests and answers (checked by @operation)."""

from __future__ import annotations

from typing import Any

from controller.http.openapi import NUMBER_PATTERN

FAX_ID = {"fax_id": {"type": "string", "pattern": "^[0-9a-f]{32}(?!\\n)$"}}
SEND_BODY = {
    "type": "object", "additionalProperties": False, "required": ["number", "document"],
    "properties": {
        "number": {"type": "string", "pattern": NUMBER_PATTERN, "description": "the fax number (dialing policy)"},
        "document": {"type": "string", "minLength": 8, "maxLength": 1_000_000, "format": "byte",
                     "description": "the PDF, base64 (at most fax.max_document_bytes once decoded)"},
    },
}
FAX: dict[str, Any] = {"type": "object", "required": ["id", "number", "status", "pages", "pages_sent", "error"],
                       "properties": {"status": {"enum": ["sending", "sent", "failed"]}}}

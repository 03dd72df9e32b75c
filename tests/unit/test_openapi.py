"""The OpenAPI description validates and matches the routes the server registers."""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate

from controller.app import Controller
from controller.config import load_config
from controller.http.openapi import openapi_document

REPO = Path(__file__).resolve().parents[2]


def test_openapi_document_is_valid_and_matches_the_routes() -> None:
    controller = Controller(load_config(REPO / "demo/controller.yaml"))
    routes = controller.routes()
    document = openapi_document(routes)
    validate(document)
    registered = {(r.method.lower(), r.path) for r in routes
                  if r.method != "HEAD" and not getattr(r.handler, "__ccc_page__", False)}
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == registered
    for path, item in document["paths"].items():
        for method, entry in item.items():
            if path not in ("/healthz", "/openapi.json", "/api/auth/login"):
                assert entry["security"] == [{"bearer": []}], f"{method} {path} must need a token"
                assert "401" in entry["responses"] and "403" in entry["responses"]


def test_the_document_states_the_limits_and_answers_the_server_enforces() -> None:
    document = openapi_document(Controller(load_config(REPO / "demo/controller.yaml")).routes())
    paths = document["paths"]
    for path, item in paths.items():
        for method, entry in item.items():
            if method == "post" and path.startswith("/api/calls/{call_id}/") and not path.endswith("/disposition"):
                assert {"404", "409"} <= set(entry["responses"]), f"{method} {path}: unknown call, wrong state"
    for path in ("/api/calls", "/api/calls/{call_id}/transfer", "/api/calls/{call_id}/conference",
                 "/api/calls/{call_id}/consult"):
        assert "429" in paths[path]["post"]["responses"], path  # the per-token dial rate limit
    history = paths["/api/numbers/{number}/calls"]["get"]["parameters"]
    number = next(p for p in history if p["name"] == "number")
    assert number["schema"]["pattern"] == "^\\+?[0-9]{3,20}(?!\\n)$"
    for path in ("/api/numbers/{number}/calls", "/api/recordings", "/api/events"):
        limit = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "limit")
        assert "maximum" in limit["schema"] and "minimum" in limit["schema"], path
    recording = paths["/api/recordings/{recording_id}"]["get"]["parameters"][0]
    assert recording["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert paths["/api/agents/{agent_id}/login"]["post"]["requestBody"]["required"] is False
    assert paths["/api/agents/{agent_id}/not_ready"]["post"]["requestBody"]["required"] is True
    assert paths["/api/webhooks/{name}/replay"]["post"]["requestBody"]["required"] is True


def test_a_malformed_request_is_one_warning_line_without_its_bytes() -> None:
    import logging
    import sys

    from aiohttp.http_exceptions import InvalidHeader

    from controller.http.server import QuietMalformedRequests
    try:
        raise InvalidHeader(b"Authorization: Bearer secret\x00")
    except InvalidHeader:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (),
                                   sys.exc_info())
    assert QuietMalformedRequests().filter(record)
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage().startswith("malformed HTTP request refused (400): ")
    assert "secret" not in record.getMessage()
    plain = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), None)
    assert QuietMalformedRequests().filter(plain) and plain.levelname == "ERROR"  # other errors stay errors

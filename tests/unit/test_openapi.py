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
            if path not in ("/healthz", "/openapi.json"):
                assert entry["security"] == [{"bearer": []}], f"{method} {path} must need a token"
                assert "401" in entry["responses"] and "403" in entry["responses"]

"""The shared list query (`from`, `to`, `limit`) of the audit log, recordings and CTI endpoints."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from controller.http.list_query import ListWindow, list_query, list_window
from controller.http.openapi import operation


def test_the_window_is_read_as_numbers_with_the_default_limit() -> None:
    request = make_mocked_request("GET", "/x?from=10&to=20.5")
    assert list_window(request) == ListWindow(start=10.0, end=20.5, limit=100)
    assert list_window(make_mocked_request("GET", "/x?limit=7"), limit_default=3) == ListWindow(None, None, 7)


@pytest.mark.parametrize(("query", "status"), [("limit=0", 400), ("limit=1001", 400), ("from=abc", 400),
                                               ("to=-1", 400), ("limit=1000&from=0&to=1", 200)])
async def test_operation_refuses_a_query_outside_the_schemas(query: str, status: int) -> None:
    @operation("list", tag="t", query=list_query())
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"limit": list_window(request).limit})

    response = await handler(make_mocked_request("GET", f"/x?{query}"))
    assert response.status == status


def test_without_a_window_only_limit_is_described() -> None:
    assert list(list_query(window=False, limit_max=5)) == ["limit"]
    assert list_query(window=False, limit_max=5)["limit"]["maximum"] == 5

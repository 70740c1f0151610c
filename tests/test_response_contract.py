"""The response-contract hook (tests/support/response_contract.py) catches
replies that do not match their route's documented response model: here an
app gets extra routes, documented as ``GET /users/{id}`` is (``PublicUser``),
that answer wrong shapes, and a contract of its own records what it saw."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.http.responses import json_response
from server.http.routes import RouteSpec
from server.keys import ROUTE_SPECS
from server.schemas.accounts import PublicUser
from tests.support.api import register
from tests.support.response_contract import ResponseContract

TEST_PREFIX = "/api/v1/contract-test/"


def _replying(body: dict[str, Any], status: int = 200) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return json_response(body, status=status)
    return handler


async def _app_with(aiohttp_client: Any, make_settings: Callable[..., Settings],
                    replies: dict[str, tuple[dict[str, Any], int]]
                    ) -> tuple[Any, ResponseContract]:
    app = create_app(make_settings())
    for name, (body, status) in replies.items():
        handler = _replying(body, status)
        handler.__name__ = f"contract_{name.replace('-', '_')}"
        app.router.add_get(TEST_PREFIX + name, handler)
        app[ROUTE_SPECS].append(RouteSpec("GET", TEST_PREFIX + name, handler, "test", ["test"],
                                          response=PublicUser, auth=False))
    contract = ResponseContract()
    contract.install(app)
    return await aiohttp_client(app), contract


async def _a_public_user(aiohttp_client: Any, make_settings: Callable[..., Settings]
                         ) -> dict[str, Any]:
    """What ``GET /users/{id}`` really answers, checked by a contract of its own."""
    client, contract = await _app_with(aiohttp_client, make_settings, {})
    user = await register(client)
    resp = await client.get(f"/api/v1/users/{user['user']['id']}")
    assert resp.status == 200
    body = await resp.json()
    assert contract.checked == 2 and contract.violations == []
    return body


async def test_the_real_replies_pass(aiohttp_client, make_settings):
    user = await _a_public_user(aiohttp_client, make_settings)
    assert set(user) == {"id", "display_name", "bio", "timezone", "languages",
                         "skills_offered", "skills_wanted", "created_at"}


async def test_wrong_shapes_are_caught(aiohttp_client, make_settings):
    good = await _a_public_user(aiohttp_client, make_settings)
    client, contract = await _app_with(aiohttp_client, make_settings, {
        "good": (good, 200),
        "wrong-type": ({**good, "id": 42}, 200),
        "missing-field": ({k: v for k, v in good.items() if k != "display_name"}, 200),
        "extra-field": ({**good, "email": "leak@example.com"}, 200),
        "microseconds": ({**good, "created_at": "2026-01-02T03:04:05.123000Z"}, 200),
        "no-fraction": ({**good, "created_at": "2026-01-02T03:04:05Z"}, 200),
        "undocumented-status": (good, 202),
        "wrong-error-body": ({"message": "not the envelope"}, 404),
    })
    for name in ("good", "wrong-type", "missing-field", "extra-field", "microseconds",
                 "no-fraction", "undocumented-status", "wrong-error-body"):
        resp = await client.get(TEST_PREFIX + name)
        await resp.read()

    def seen(name: str) -> list[str]:
        return [v for v in contract.violations if v.startswith(f"GET {TEST_PREFIX}{name} ")]

    assert seen("good") == []
    assert len(seen("wrong-type")) == 1 and "/id:" in seen("wrong-type")[0]
    assert len(seen("missing-field")) == 1 and "display_name" in seen("missing-field")[0]
    assert len(seen("extra-field")) == 1 and "'email' was unexpected" in seen("extra-field")[0]
    for name in ("microseconds", "no-fraction"):
        assert len(seen(name)) == 1 and "/created_at: timestamp" in seen(name)[0]
    assert len(seen("undocumented-status")) == 1
    assert "status not documented" in seen("undocumented-status")[0]
    assert seen("wrong-error-body")  # 404 is documented, with the error envelope


async def test_a_violation_fails_the_test(aiohttp_client, make_settings):
    """What the ``response_contract`` fixture does at teardown."""
    client, contract = await _app_with(aiohttp_client, make_settings,
                                       {"bad": ({"id": "x"}, 200)})
    await (await client.get(TEST_PREFIX + "bad")).read()
    try:
        contract.assert_clean()
    except AssertionError as exc:
        assert "GET /api/v1/contract-test/bad -> 200" in str(exc)
    else:
        raise AssertionError("assert_clean() let a wrong reply pass")

"""The test hook that holds every REST reply to its documented shape.

``ResponseContract.install(app)`` (tests/conftest.py does it for every app
given to ``aiohttp_client``) puts an aiohttp middleware outside all of
the app's own (so it sees the final response, errors included). For each
JSON response of a route in the route table (``app[ROUTE_SPECS]``), it looks
up what the OpenAPI document the server generates (``build_openapi``, the
same as ``/openapi.json``) says for that method, path and status, and
validates the body against it:

- an undocumented status, or a documented status whose reply is not the
  documented JSON, is a violation (a route that documents no response model,
  like the free-form data export, gets only the timestamp check);
- objects are held to their documented properties: a field the model does
  not declare is a violation too (``additionalProperties: false`` is added
  wherever the document leaves it open), so replies cannot grow
  undocumented fields;
- every string that looks like a timestamp must be ISO 8601 UTC with
  milliseconds and ``Z`` (``2026-01-02T03:04:05.123Z``), the one format the
  views render (``server/views``).

Violations are collected, not raised inside the app (the client must still
get the real reply); the ``response_contract`` fixture (tests/conftest.py)
fails the test at teardown when any were seen."""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import orjson
from aiohttp import web

from server.keys import ROUTE_SPECS
from server.openapi import build_openapi

TIMESTAMP_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
JSON_TYPES = ("application/json", "application/problem+json")
INSTALLED = web.AppKey("response_contract", object)  # the contract checking this app


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that
    lists its properties and does not say otherwise."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path or "/", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}/{i}")


@dataclass
class ResponseContract:
    violations: list[str] = field(default_factory=list)
    checked: int = 0
    _documents: dict[int, dict[str, Any]] = field(default_factory=dict)  # by id(app)
    _validators: dict[tuple[int, str, str, str], Any] = field(default_factory=dict)

    def install(self, app: web.Application) -> None:
        """Check ``app``'s replies (before it starts); an app checked by
        another contract already is left to that one."""
        if INSTALLED in app:
            return
        app[INSTALLED] = self
        app.middlewares.insert(0, self._middleware)

    def assert_clean(self) -> None:
        assert not self.violations, (
            "REST replies that do not match their documented response model "
            "(tests/support/response_contract.py):\n" + "\n".join(self.violations))

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and aiohttp's own statuses
            self.check(request, exc)
            raise
        self.check(request, response)
        return response

    def check(self, request: web.Request, response: web.StreamResponse) -> None:
        route = request.match_info.route
        resource = route.resource
        if resource is None:
            return
        operation = self._operation(request.app, resource.canonical, request.method)
        if operation is None:  # static files, Socket.IO, routes outside the table
            return
        where = f"{request.method} {request.path} -> {response.status}"
        documented = operation["responses"].get(str(response.status))
        if documented is None:
            self.violations.append(f"{where}: status not documented "
                                   f"(documented: {sorted(operation['responses'])})")
            return
        body = getattr(response, "body", None)
        is_json = response.content_type in JSON_TYPES
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if not is_json or not isinstance(body, bytes | bytearray) or not body:
            if schema is not None and "text/html" not in documented.get("content", {}):
                self.violations.append(f"{where}: documented as JSON, got "
                                       f"{response.content_type!r}")
            return
        self.checked += 1
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.violations.append(f"{where}: body is not JSON")
            return
        if schema is not None:
            key = (id(request.app), resource.canonical, request.method, str(response.status))
            validator = self._validators.get(key)
            if validator is None:
                components = self._documents[id(request.app)]["components"]
                root = {"components": _closed(components), **_closed(copy.deepcopy(schema))}
                validator = self._validators[key] = jsonschema_rs.validator_for(root)
            for error in validator.iter_errors(data):
                at = "/" + "/".join(str(p) for p in error.instance_path)
                self.violations.append(f"{where}: {at}: {error.message}")
        for path, text in _strings(data):
            if TIMESTAMP_LIKE.match(text) and not TIMESTAMP.match(text):
                self.violations.append(f"{where}: {path}: timestamp {text!r} is not "
                                       "ISO 8601 UTC with milliseconds (…05.123Z)")

    def _operation(self, app: web.Application, path: str, method: str) -> dict[str, Any] | None:
        document = self._documents.get(id(app))
        if document is None:
            document = build_openapi(app[ROUTE_SPECS], version="test", server_url=None)
            self._documents[id(app)] = document
        return document["paths"].get(path, {}).get(method.lower())

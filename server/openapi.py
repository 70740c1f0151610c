"""The OpenAPI 3.1 document, built from the route table's metadata and the
pydantic models that also validate the requests."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .http.routes import RouteSpec
from .schemas.common import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
API_PREFIX = "/api/"
RETRY_AFTER_HEADER = {"description": "Seconds to wait before trying again.",
                      "schema": {"type": "integer", "minimum": 1}}
LOCATION_HEADER = {"description": "Where the browser goes next.",
                   "schema": {"type": "string"}}
STATUS_TEXT = {
    400: "Invalid input (`validation_error`, `bad_request`)",
    401: "Not signed in, or a bad, expired or revoked token",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Rate limited (see `Retry-After`)",
    503: "A dependency is unavailable",
}


Mode = Literal["validation", "serialization"]


def _component_refs(
    specs: list[RouteSpec], components: dict[str, Any]
) -> dict[tuple[type[BaseModel], Mode], dict[str, Any]]:
    """Every request model (validation schema) and response model
    (serialization schema) in one pass, so that pydantic names the
    components: two models with the same class name (accounts.MessageOut and
    rooms.MessageOut), or one model whose two modes differ, get distinct
    components instead of overwriting each other."""
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorBody, "serialization")]
    for spec in specs:
        if spec.body is not None:
            wanted.append((spec.body, "validation"))
        if spec.response is not None:
            wanted.append((spec.response, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)),
                                           ref_template=REF_TEMPLATE)
    components.update(definitions.get("$defs", {}))
    return {key: refs[key] for key in wanted}  # typed by our keys, not pydantic's wider ones


def _implied_errors(spec: RouteSpec) -> set[int]:
    """Statuses every route of a kind can answer, whatever its own list says:
    a JSON body can be malformed, too large or not JSON; a path id can be
    invalid or unknown; every API route is under the per-IP limit and needs
    the database; a route with auth needs a valid token."""
    implied = {500}
    if spec.auth:
        implied.add(401)
    if spec.body is not None:
        implied |= {400, 413, 415}
    if re.search(r"{\w+}", spec.path):
        implied |= {400, 404}
    if spec.path.startswith(API_PREFIX):
        implied |= {429, 503}
    return implied


def build_openapi(specs: list[RouteSpec], *, version: str, server_url: str | None) -> dict:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    refs = _component_refs(specs, components)
    error_ref = refs[(ErrorBody, "serialization")]
    for spec in specs:
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": spec.tags,
            "operationId": f"{spec.method.lower()}_{spec.handler.__name__}",
        }
        if spec.description:
            operation["description"] = spec.description
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", spec.path)
        ]
        if spec.query is not None:
            qschema = spec.query.model_json_schema(ref_template=REF_TEMPLATE)
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                parameters.append({"name": name, "in": "query", "required": name in required,
                                   "schema": prop})
        if parameters:
            operation["parameters"] = parameters
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(spec.body, "validation")]}},
            }
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "Success"}
        if spec.response is not None and spec.status != 204:
            ok["content"] = {"application/json": {"schema": refs[(spec.response, "serialization")]}}
        if 300 <= spec.status < 400:
            ok = {"description": "Redirect", "headers": {"Location": LOCATION_HEADER}}
        responses[str(spec.status)] = ok
        for status in spec.also:
            responses[str(status)] = ok
        for status in sorted(set(spec.errors) | _implied_errors(spec)):
            content: dict[str, Any] = {"application/json": {"schema": error_ref}}
            if spec.html:  # a page for the person; the middleware's own errors stay JSON
                content["text/html"] = {"schema": {"type": "string"}}
            responses[str(status)] = {
                "description": STATUS_TEXT.get(status, "Internal error"),
                "content": content,
            }
            if status == 429:
                responses[str(status)]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        operation["responses"] = responses
        if spec.auth:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Skill Share API",
            "version": version,
            "description": (
                "REST API of Skill Share. Errors always use the envelope "
                "`{error: {code, message, details, request_id}}`. Real-time events "
                "(Socket.IO) are described in docs/realtime.md."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document

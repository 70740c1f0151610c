"""The OpenAPI 3.1 document, built from the route table's metadata and the
pydantic models that also validate the requests."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from .http import RouteSpec
from .schemas.common import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
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


def _schema_ref(
    model: type[BaseModel], components: dict[str, Any],
    mode: Literal["validation", "serialization"] = "serialization",
) -> dict[str, Any]:
    """Put the model's schema (and those it refers to) into ``components``;
    request bodies use the validation schema, responses the serialization one."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def build_openapi(specs: list[RouteSpec], *, version: str, server_url: str | None) -> dict:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_ref = _schema_ref(ErrorBody, components)
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
                "content": {"application/json": {"schema": _schema_ref(spec.body, components, "validation")}},
            }
        responses: dict[str, Any] = {}
        ok: dict[str, Any] = {"description": "Success"}
        if spec.response is not None and spec.status != 204:
            ok["content"] = {"application/json": {"schema": _schema_ref(spec.response, components)}}
        responses[str(spec.status)] = ok
        for status in sorted(set(spec.errors) | ({401} if spec.auth else set()) | {500}):
            responses[str(status)] = {
                "description": STATUS_TEXT.get(status, "Internal error"),
                "content": {"application/json": {"schema": error_ref}},
            }
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

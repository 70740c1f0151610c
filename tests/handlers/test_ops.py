"""Operations endpoints and the cross-cutting HTTP behaviour every response
shares: request ids, error envelope, security headers, CORS, size limits."""

from __future__ import annotations

from aiohttp import web

from server.app import create_app
from tests.support.api import error_of, register


async def test_healthz_readyz_metrics(client):
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok"}
    await client.get("/api/v1/users/000000000000000000000000")
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'skillshare_http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"}' in text
    assert "skillshare_http_request_duration_seconds_bucket" in text


async def test_readyz_503_when_redis_is_down(make_client, redis_process, redis_url):
    client = await make_client(redis_url=redis_url)
    assert (await client.get("/readyz")).status == 200
    redis_process.stop()
    try:
        resp = await client.get("/readyz")
        assert resp.status == 503
        error = await error_of(resp)
        assert error["code"] == "unavailable"
        assert error["details"]["failing"] == ["redis"]
        assert (await client.get("/healthz")).status == 200
    finally:
        redis_process.start()
    assert (await client.get("/readyz")).status == 200


async def test_request_id_echoed_or_generated(client):
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith <stuff>"})
    assert resp.headers["X-Request-ID"] != "bad id\twith <stuff>"
    assert len(resp.headers["X-Request-ID"]) == 24
    resp = await client.get("/nope", headers={"X-Request-ID": "trace-me"})
    assert (await error_of(resp))["request_id"] == "trace-me"


async def test_security_headers_on_every_response(client):
    for resp in (await client.get("/healthz"), await client.get("/nope"), await client.get("/")):
        assert "default-src" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"]
        assert "Strict-Transport-Security" not in resp.headers


async def test_hsts_in_production(make_client):
    client = await make_client(env="production", data_key=["d" * 40])
    resp = await client.get("/healthz")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_aiohttp_errors_use_envelope(make_client):
    client = await make_client(max_body_bytes=2048)
    not_found = await client.get("/api/v1/nothing-here")
    assert not_found.status == 404 and (await error_of(not_found))["code"] == "not_found"
    method = await client.put("/api/v1/auth/login", json={})
    assert method.status == 405 and (await error_of(method))["code"] == "method_not_allowed"
    big = await client.post("/api/v1/auth/login", data=b"{" + b" " * 5000 + b"}",
                            headers={"Content-Type": "application/json"})
    assert big.status == 413 and (await error_of(big))["code"] == "payload_too_large"


async def test_unexpected_exception_is_500_without_trace(make_settings, aiohttp_client):
    app = create_app(make_settings())

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/boom")
    assert resp.status == 500
    error = await error_of(resp)
    assert error["code"] == "internal_error"
    text = await resp.text()
    assert "secret internals" not in text and "Traceback" not in text
    assert (await client.get("/healthz")).status == 200


async def test_cors_allowed_and_refused_origins(make_client):
    client = await make_client(cors_origins=["https://app.example.com"])
    preflight = await client.options("/api/v1/auth/login", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    resp = await client.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    evil = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers


async def test_openapi_document_covers_the_api(client):
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/auth/register", "post"), ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"), ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/logout-all", "post"), ("/api/v1/auth/sessions", "get"),
        ("/api/v1/auth/sessions/{id}", "delete"), ("/api/v1/auth/verify-email", "post"),
        ("/api/v1/auth/verify-email/resend", "post"), ("/api/v1/auth/password/forgot", "post"),
        ("/api/v1/auth/password/reset", "post"), ("/api/v1/auth/password/change", "post"),
        ("/api/v1/users/me", "get"), ("/api/v1/users/me", "patch"),
        ("/api/v1/users/me", "delete"), ("/api/v1/users/me/export", "get"),
        ("/api/v1/users/{id}", "get"), ("/healthz", "get"), ("/readyz", "get"),
        ("/metrics", "get"), ("/openapi.json", "get"), ("/docs", "get"), ("/", "get"),
        ("/api/v1/skills", "post"), ("/api/v1/skills", "get"), ("/api/v1/skills/{id}", "get"),
        ("/api/v1/skills/{id}", "patch"), ("/api/v1/skills/{id}", "delete"),
        ("/api/v1/skills/{id}/requests", "post"), ("/api/v1/requests", "get"),
        ("/api/v1/requests/{id}/accept", "post"), ("/api/v1/requests/{id}/decline", "post"),
        ("/api/v1/requests/{id}/cancel", "post"), ("/api/v1/requests/{id}/complete", "post"),
        ("/api/v1/requests/{id}/review", "post"), ("/api/v1/matches", "get"),
        ("/api/v1/rooms", "get"), ("/api/v1/rooms", "post"),
        ("/api/v1/rooms/{id}/messages", "get"), ("/api/v1/calls/ice-servers", "get"),
    ]:
        assert method in paths[path], (path, method)
    register_op = paths["/api/v1/auth/register"]["post"]
    schema_ref = register_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]
    assert set(schema["required"]) == {"email", "password", "display_name"}
    assert "409" in register_op["responses"] and "201" in register_op["responses"]


async def test_docs_page_served_without_cdn(client):
    page = await client.get("/docs")
    html = await page.text()
    assert page.status == 200 and "/docs/static/swagger-ui-bundle.js" in html
    assert "http" not in html.replace("http-equiv", "")
    bundle = await client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status == 200 and len(await bundle.read()) > 100_000
    assert (await client.get("/docs/init.js")).status == 200


async def test_secrets_never_logged(client, capfd):
    from loguru import logger

    sink_lines: list[str] = []
    handler = logger.add(lambda m: sink_lines.append(str(m)), level="DEBUG",
                         format="{message} {extra}")
    try:
        account = await register(client, email="secret.person@example.com",
                                 password="my very secret pw 1")
        await client.post("/api/v1/auth/login",
                          json={"email": account["email"], "password": "wrong secret pw 2"})
        await client.post("/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]})
    finally:
        logger.remove(handler)
    logged = "\n".join(sink_lines)
    assert sink_lines, "expected some log lines"
    for secret in ("my very secret pw 1", "wrong secret pw 2", account["access_token"],
                   account["refresh_token"], "secret.person@example.com"):
        assert secret not in logged


async def test_api_rate_limit_per_ip(make_client):
    client = await make_client(api_limit="5/minute")
    for _ in range(5):
        assert (await client.get("/api/v1/users/000000000000000000000000")).status == 404
    resp = await client.get("/api/v1/users/000000000000000000000000")
    assert resp.status == 429
    assert (await error_of(resp))["code"] == "rate_limited"
    assert (await client.get("/healthz")).status == 200  # operations are not limited


async def test_unexpected_exception_reaches_sentry(make_settings, aiohttp_client):
    """Sentry is the edge of the world: its transport is replaced by a list."""
    import sentry_sdk

    events: list[dict] = []

    class ListTransport(sentry_sdk.transport.Transport):
        def capture_envelope(self, envelope):
            for item in envelope.items:
                if item.type == "event":
                    events.append(item.payload.json)

    sentry_sdk.init(dsn="https://key@sentry.invalid/1", transport=ListTransport(),
                    default_integrations=False)
    try:
        app = create_app(make_settings())

        async def boom(request: web.Request) -> web.Response:
            raise ValueError("kaboom")

        app.router.add_get("/boom", boom)
        client = await aiohttp_client(app)
        resp = await client.get("/boom", headers={"X-Request-ID": "sentry-req"})
        assert resp.status == 500
        sentry_sdk.flush()
    finally:
        sentry_sdk.init(dsn=None)
    # (after another test's Sentry init in this process, the error's log
    # line arrives as an untagged event of its own as well: pick the
    # middleware's)
    captured = [e for e in events
                if "exception" in e and e.get("tags", {}).get("request_id") == "sentry-req"]
    assert captured and captured[0]["exception"]["values"][-1]["value"] == "kaboom"
    assert captured[0]["tags"]["route"] == "/boom"


async def test_static_assets_revalidate_while_api_responses_are_not_stored(client):
    bundle = await client.get("/static/app.css")
    assert bundle.status == 200
    assert bundle.headers["Cache-Control"] == "no-cache"
    again = await client.get("/static/app.css",
                             headers={"If-Modified-Since": bundle.headers["Last-Modified"]})
    assert again.status == 304
    assert (await client.get("/healthz")).headers["Cache-Control"] == "no-store"


async def test_every_documented_body_is_its_own_model(client):
    """Two models with the same class name (accounts.MessageOut and
    rooms.MessageOut) once shared one component: the 202 of
    verify-email/resend was documented as a chat message. Every request and
    response schema in the document has exactly its model's fields."""
    from server.keys import ROUTE_SPECS

    doc = await (await client.get("/openapi.json")).json()
    components = doc["components"]["schemas"]

    def fields_of(schema: dict) -> set[str]:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return set(components[name].get("properties", {}))

    checked = 0
    for spec in client.app[ROUTE_SPECS]:
        operation = doc["paths"][spec.path][spec.method.lower()]
        if spec.response is not None and spec.status != 204:
            schema = operation["responses"][str(spec.status)]["content"]["application/json"]
            assert fields_of(schema["schema"]) == set(spec.response.model_fields), spec.path
            checked += 1
        if spec.body is not None:
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            assert fields_of(schema) == set(spec.body.model_fields), spec.path
    assert checked > 20


async def test_generic_refusals_are_documented_for_every_route(make_client):
    """Every route with a body answers a non-JSON body (415), a huge one (413)
    and broken JSON (400); every route with an id answers a bad id; all are
    in that operation's documented responses, as are 429 (with Retry-After)
    and 503 for every API route."""
    import re

    from server.keys import ROUTE_SPECS
    from tests.support.api import bearer, register

    client = await make_client(max_body_bytes=1024)
    doc = await (await client.get("/openapi.json")).json()
    headers = bearer((await register(client))["access_token"])
    for spec in client.app[ROUTE_SPECS]:
        operation = doc["paths"][spec.path][spec.method.lower()]
        documented = set(operation["responses"])
        path = re.sub(r"{\w+}", "not-an-id", spec.path)
        sent = []
        if spec.body is not None:
            sent.append(await client.request(spec.method, path, data="hello", headers={
                **headers, "Content-Type": "text/plain"}))
            sent.append(await client.request(spec.method, path, data="{", headers={
                **headers, "Content-Type": "application/json"}))
            sent.append(await client.request(spec.method, path, data="[" + "1," * 2000 + "1]",
                                             headers={**headers,
                                                      "Content-Type": "application/json"}))
        if "{" in spec.path:
            sent.append(await client.request(spec.method, path, headers=headers))
        for resp in sent:
            assert str(resp.status) in documented, (spec.method, spec.path, resp.status)
        if spec.path.startswith("/api/"):
            assert {"429", "503"} <= documented, spec.path
            assert "Retry-After" in operation["responses"]["429"]["headers"]


async def test_method_not_allowed_keeps_the_allow_header(client):
    """RFC 9110: a 405 lists the methods the resource supports (schemathesis
    found TRACE answered without it once the error envelope was applied)."""
    from tests.support.api import error_of

    for method, path in (("TRACE", "/api/v1/rooms"), ("PUT", "/api/v1/skills/categories")):
        resp = await client.request(method, path)
        assert resp.status == 405
        assert (await error_of(resp))["code"] == "method_not_allowed"
        allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
        assert "GET" in allowed and method not in allowed

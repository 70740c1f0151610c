"""The ``github`` preset (OAuth 2, not OpenID Connect) against a local
stand-in for GitHub that speaks its web flow and the two REST calls we use
(/user and /user/emails) on a loopback port (``SKILLSHARE_OIDC_GITHUB_ISSUER``
points there). Real github.com is not reachable from the tests."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from server.app import create_app
from server.keys import DB
from tests.support.services import free_port

CALLBACK = "/api/v1/auth/oidc/github/callback"


class FakeGitHub:
    """Authorizes at once as ``user``; checks the client, code and PKCE."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.user: dict[str, Any] = {}
        self.emails: list[dict[str, Any]] = []
        self._codes: dict[str, dict[str, str]] = {}
        self._tokens: set[str] = set()
        self.app = web.Application()
        self.app.router.add_get("/login/oauth/authorize", self.authorize)
        self.app.router.add_post("/login/oauth/access_token", self.token)
        self.app.router.add_get("/api/v3/user", self.api_user)
        self.app.router.add_get("/api/v3/user/emails", self.api_emails)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["client_id"] == self.client_id and q["code_challenge_method"] == "S256"
        code = secrets.token_hex(8)
        self._codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"]}
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self._codes.pop(str(form.get("code")), None)
        ok = (grant is not None and form.get("client_id") == self.client_id
              and form.get("client_secret") == self.client_secret
              and form.get("redirect_uri") == grant["redirect_uri"]
              and create_s256_code_challenge(str(form.get("code_verifier"))) == grant["challenge"])
        if not ok:
            return web.json_response({"error": "bad_verification_code"})
        token = secrets.token_hex(16)
        self._tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer"})

    def _check(self, request: web.Request) -> None:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self._tokens:
            raise web.HTTPUnauthorized()

    async def api_user(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response(self.user)

    async def api_emails(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.json_response(self.emails)


@pytest.fixture
async def github(aiohttp_server: Callable[..., Any]) -> tuple[FakeGitHub, str]:
    fake = FakeGitHub("gh-client", "gh-secret")
    server = await aiohttp_server(fake.app)
    return fake, f"http://127.0.0.1:{server.port}"


async def _site(aiohttp_client: Any, make_settings: Any, issuer: str) -> tuple[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(public_url=url, oidc_providers=["github"], oidc={"github": {
        "issuer": issuer, "client_id": "gh-client", "client_secret": "gh-secret"}})
    return url, await aiohttp_client(create_app(settings), server_kwargs={"port": port})


async def _sign_in(url: str) -> tuple[aiohttp.ClientResponse, aiohttp.ClientSession]:
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await browser.get(url + "/api/v1/auth/oidc/github/start", allow_redirects=True,
                             max_redirects=5)
    return resp, browser


async def test_github_signs_in_with_the_verified_primary_email(
    github: tuple[FakeGitHub, str], aiohttp_client: Any, make_settings: Any
) -> None:
    fake, issuer = github
    fake.user = {"id": 4242, "login": "octo", "name": "Octo Cat"}
    fake.emails = [{"email": "old@example.com", "primary": False, "verified": True},
                   {"email": "Octo@Example.com", "primary": True, "verified": True}]
    url, client = await _site(aiohttp_client, make_settings, issuer)
    resp, browser = await _sign_in(url)
    try:
        assert resp.status == 200 and str(resp.url) == url + "/"  # the web app
        csrf = next(m.value for m in browser.cookie_jar if m.key == "ss_csrf")
        refreshed = await browser.post(url + "/api/v1/auth/refresh",
                                       headers={"X-CSRF-Token": csrf})
        user = (await refreshed.json())["user"]
        assert (user["email"], user["email_verified"], user["display_name"]) == (
            "octo@example.com", True, "Octo Cat")
        identity = await client.app[DB]["identities"].find_one({"provider": "github"})
        assert identity["subject"] == "4242"
    finally:
        await browser.close()


async def test_github_without_a_verified_primary_email_is_refused(
    github: tuple[FakeGitHub, str], aiohttp_client: Any, make_settings: Any
) -> None:
    fake, issuer = github
    fake.user = {"id": 7, "login": "newbie"}
    fake.emails = [{"email": "newbie@example.com", "primary": True, "verified": False}]
    url, client = await _site(aiohttp_client, make_settings, issuer)
    resp, browser = await _sign_in(url)
    try:
        assert resp.status == 400 and resp.content_type == "text/html"
        assert "has not verified your email" in await resp.text()
        assert await client.app[DB]["users"].count_documents({}) == 0
    finally:
        await browser.close()

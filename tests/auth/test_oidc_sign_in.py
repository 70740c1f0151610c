"""Signing in with an OpenID provider, end to end, against a real local
provider (npm oidc-provider, tests/js/oidc_provider.mjs): a browser (an
aiohttp session with its own cookie jar, following the provider's
redirects) starts at /api/v1/auth/oidc/demo/start, signs in at the
provider and comes back to the callback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from server.app import create_app
from server.config import Settings
from server.clock import Clock, FrozenClock
from server.keys import DB, FIELDS, PURGE
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, register, unique_email
from tests.support.oidc_provider import OidcProviderProcess
from tests.support.services import free_port

PROVIDER = "demo"
START = f"/api/v1/auth/oidc/{PROVIDER}/start"
CALLBACK = f"/api/v1/auth/oidc/{PROVIDER}/callback"
MAX_REDIRECTS = 20


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProviderProcess]:
    process = OidcProviderProcess()
    process.start()
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Site:
    """Our node (``url``, with ``client`` for the API) and the provider."""

    url: str
    client: Any
    provider: OidcProviderProcess

    @property
    def db(self) -> Any:
        return self.client.app[DB]


async def make_site(provider: OidcProviderProcess, aiohttp_client: Callable[..., Any],
                    make_settings: Callable[..., Settings], clock: Clock | None = None,
                    **overrides: Any) -> Site:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    registered = await provider.register_client(url + CALLBACK)
    settings = make_settings(
        public_url=url, oidc_providers=[PROVIDER],
        oidc={PROVIDER: {"issuer": provider.issuer, "display_name": "Demo Provider",
                         **registered}},
        **overrides,
    )
    client = await aiohttp_client(create_app(settings, clock=clock),
                                  server_kwargs={"port": port})
    return Site(url=url, client=client, provider=provider)


@pytest.fixture
async def site(provider: OidcProviderProcess, aiohttp_client: Callable[..., Any],
               make_settings: Callable[..., Settings]) -> Site:
    return await make_site(provider, aiohttp_client, make_settings)


@pytest.fixture
async def new_browser() -> AsyncIterator[Callable[[], aiohttp.ClientSession]]:
    sessions: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        # unsafe: keep cookies for IP-address hosts (127.0.0.1)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return session

    yield factory
    for session in sessions:
        await session.close()


async def at_provider(browser: aiohttp.ClientSession, url: str, sub: str) -> str:
    """Sign in at the provider as ``sub``; the callback URL it sends us to
    (not opened yet)."""
    url = f"{url}&login_hint={quote(sub)}"
    for _ in range(MAX_REDIRECTS):
        path = urlsplit(url).path
        if path.startswith("/api/v1/auth/oidc/") and path.endswith("/callback"):
            return url
        async with browser.get(url, allow_redirects=False) as response:
            assert response.status in (302, 303), (response.status, await response.text())
            location = response.headers["Location"]
        url = location if location.startswith("http") else (
            f"{urlsplit(url).scheme}://{urlsplit(url).netloc}{location}")
    raise AssertionError("too many redirects at the provider")


async def start(site: Site, browser: aiohttp.ClientSession) -> str:
    async with browser.get(site.url + START, allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        return response.headers["Location"]


async def sign_in_at_provider(site: Site, browser: aiohttp.ClientSession, sub: str) -> str:
    return await at_provider(browser, await start(site, browser), sub)


@dataclass
class Outcome:
    status: int
    location: str | None
    text: str
    content_type: str


async def open_callback(browser: aiohttp.ClientSession, url: str) -> Outcome:
    async with browser.get(url, allow_redirects=False) as response:
        return Outcome(response.status, response.headers.get("Location"), await response.text(),
                       response.content_type)


async def sign_in(site: Site, browser: aiohttp.ClientSession, sub: str) -> Outcome:
    return await open_callback(browser, await sign_in_at_provider(site, browser, sub))


def cookie(browser: aiohttp.ClientSession, name: str) -> str | None:
    for morsel in browser.cookie_jar:
        if morsel.key == name:
            return morsel.value
    return None


async def refresh_with_cookie(site: Site, browser: aiohttp.ClientSession) -> dict[str, Any]:
    async with browser.post(site.url + "/api/v1/auth/refresh",
                            headers={"X-CSRF-Token": cookie(browser, "ss_csrf") or ""}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def new_person(site: Site, *, email_verified: bool = True,
                     email: str | None = None) -> tuple[str, str]:
    sub, email = f"sub-{secrets.token_hex(6)}", email or unique_email("oidc")
    await site.provider.add_account(sub, email=email, email_verified=email_verified,
                                    name="Grace Hopper")
    return sub, email


def assert_refused(outcome: Outcome, status: int, phrase: str) -> None:
    assert outcome.status == status, outcome
    assert outcome.content_type == "text/html"
    assert phrase in outcome.text, outcome.text
    assert outcome.location is None


async def counts(site: Site, email: str) -> dict[str, int]:
    """Accounts with ``email`` (found through its blind index: the address
    itself is stored encrypted), their identities and sessions."""
    index = site.client.app[FIELDS].blind_indexes(email)
    users = await site.db["users"].find({"email_index": {"$in": index}}).to_list(None)
    ids = [u["_id"] for u in users]
    return {
        "users": len(users),
        "identities": await site.db["identities"].count_documents({"user_id": {"$in": ids}}),
        "sessions": await site.db["sessions"].count_documents({"user_id": {"$in": ids}}),
    }


# ---- the happy path -----------------------------------------------------------------------


async def test_providers_are_listed(site: Site) -> None:
    resp = await site.client.get("/api/v1/auth/oidc/providers")
    assert resp.status == 200
    assert await resp.json() == {"items": [{"name": "demo", "display_name": "Demo Provider"}]}


async def test_start_redirects_with_state_nonce_and_pkce(site: Site, new_browser: Any) -> None:
    browser = new_browser()
    location = await start(site, browser)
    assert location.startswith(site.provider.issuer + "/auth?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == site.url + CALLBACK
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"] and params["state"] != params["nonce"]
    assert cookie(browser, "ss_oidc")


async def test_a_new_person_gets_an_account_and_a_browser_session(
    site: Site, new_browser: Any
) -> None:
    sub, email = await new_person(site)
    browser = new_browser()
    outcome = await sign_in(site, browser, sub)
    assert outcome.status == 302, outcome
    assert outcome.location == site.url + "/"
    assert cookie(browser, "ss_refresh") and cookie(browser, "ss_csrf")
    assert not cookie(browser, "ss_oidc")

    pair = await refresh_with_cookie(site, browser)
    assert pair["user"]["email"] == email
    assert pair["user"]["email_verified"] is True
    assert pair["user"]["has_password"] is False
    assert pair["user"]["display_name"] == "Grace Hopper"
    me = await (await site.client.get("/api/v1/users/me",
                                      headers=bearer(pair["access_token"]))).json()
    assert [(i["provider"], i["display_name"], i["email"]) for i in me["identities"]] == [
        ("demo", "Demo Provider", email)]
    stored = await site.db["identities"].find_one({"user_id": me["id"]})
    assert stored["email"].startswith("enc:v1:")  # the provider's address, encrypted at rest
    export = await (await site.client.get("/api/v1/users/me/export",
                                          headers=bearer(pair["access_token"]))).json()
    assert [(i["provider"], i["subject"]) for i in export["sign_in_providers"]] == [
        ("demo", sub)]
    actions = [a["action"] async for a in site.db["audit_log"].find({"target": me["id"]})]
    assert "account.oidc_login" in actions
    metrics = await (await site.client.get("/metrics")).text()
    assert 'skillshare_oidc_callbacks_total{outcome="signed_in",provider="demo"} 1.0' in metrics


async def test_the_same_subject_always_signs_into_the_same_account(
    site: Site, new_browser: Any
) -> None:
    sub, email = await new_person(site)
    first = new_browser()
    assert (await sign_in(site, first, sub)).status == 302
    second = new_browser()
    assert (await sign_in(site, second, sub)).status == 302
    one = await refresh_with_cookie(site, first)
    two = await refresh_with_cookie(site, second)
    assert one["user"]["id"] == two["user"]["id"]
    assert await counts(site, email) == {"users": 1, "identities": 1, "sessions": 2}


# ---- linking rules ------------------------------------------------------------------------


async def _verified_account(site: Site, email: str) -> dict[str, Any]:
    account = await register(site.client, email=email)
    await site.db["users"].update_one({"_id": account["user"]["id"]},
                                      {"$set": {"email_verified": True}})
    return account


async def test_verified_email_at_both_links_the_existing_account(
    site: Site, new_browser: Any
) -> None:
    email = unique_email("both-verified")
    account = await _verified_account(site, email)
    sub, _ = await new_person(site, email=email.upper())
    browser = new_browser()
    assert (await sign_in(site, browser, sub)).status == 302
    pair = await refresh_with_cookie(site, browser)
    assert pair["user"]["id"] == account["user"]["id"]
    assert pair["user"]["has_password"] is True
    link = await site.db["audit_log"].find_one({"action": "account.oidc_link",
                                            "target": account["user"]["id"]})
    assert link is not None and link["details"]["provider"] == "demo"


async def test_an_unverified_password_account_is_not_taken_over(
    site: Site, new_browser: Any
) -> None:
    # someone registered the address first (maybe not its owner) and never verified it
    email = unique_email("pre-hijack")
    await register(site.client, email=email)
    sub, _ = await new_person(site, email=email)
    browser = new_browser()
    outcome = await sign_in(site, browser, sub)
    assert_refused(outcome, 400, "Sign in with its password")
    assert not cookie(browser, "ss_refresh")
    assert await counts(site, email) == {"users": 1, "identities": 0, "sessions": 1}
    login = await site.client.post("/api/v1/auth/login",
                                   json={"email": email, "password": DEFAULT_PASSWORD})
    assert login.status == 200


async def test_email_not_verified_by_the_provider_never_signs_in(
    site: Site, new_browser: Any
) -> None:
    email = unique_email("verified-here")
    await _verified_account(site, email)
    sub, _ = await new_person(site, email=email, email_verified=False)
    outcome = await sign_in(site, new_browser(), sub)
    assert_refused(outcome, 400, "has not verified your email")
    assert await counts(site, email) == {"users": 1, "identities": 0, "sessions": 1}

    # nor does it create an account for an unused address
    sub, email = await new_person(site, email_verified=False)
    outcome = await sign_in(site, new_browser(), sub)
    assert_refused(outcome, 400, "has not verified your email")
    assert await counts(site, email) == {"users": 0, "identities": 0, "sessions": 0}


# ---- what the callback checks -------------------------------------------------------------


async def _nothing_signed_in(site: Site, browser: aiohttp.ClientSession, email: str) -> None:
    assert not cookie(browser, "ss_refresh")
    assert await counts(site, email) == {"users": 0, "identities": 0, "sessions": 0}


async def test_a_forged_state_is_refused(site: Site, new_browser: Any) -> None:
    sub, email = await new_person(site)
    browser = new_browser()
    callback = await sign_in_at_provider(site, browser, sub)
    query = parse_qs(urlsplit(callback).query)
    forged = f"{site.url}{CALLBACK}?code={quote(query['code'][0])}&state=forged-state"
    assert_refused(await open_callback(browser, forged), 400, "Please start again")
    await _nothing_signed_in(site, browser, email)
    metrics = await (await site.client.get("/metrics")).text()
    assert 'skillshare_oidc_callbacks_total{outcome="refused",provider="demo"} 1.0' in metrics


async def test_a_state_from_another_browser_is_refused(site: Site, new_browser: Any) -> None:
    sub, email = await new_person(site)
    victim_link = await sign_in_at_provider(site, new_browser(), sub)
    other = new_browser()  # a browser that did not start this sign-in
    assert_refused(await open_callback(other, victim_link), 400, "not started in this browser")
    await _nothing_signed_in(site, other, email)


async def test_a_callback_works_once(site: Site, new_browser: Any) -> None:
    sub, _ = await new_person(site)
    browser = new_browser()
    callback = await sign_in_at_provider(site, browser, sub)
    assert (await open_callback(browser, callback)).status == 302
    assert_refused(await open_callback(browser, callback), 400, "already used")


async def test_a_cancelled_sign_in_shows_a_page(site: Site, new_browser: Any) -> None:
    browser = new_browser()
    await start(site, browser)
    outcome = await open_callback(browser, f"{site.url}{CALLBACK}?error=access_denied")
    assert_refused(outcome, 400, "cancelled")


@pytest.mark.parametrize("change", [
    {"claims": {"aud": "some-other-client"}},
    {"claims": {"nonce": "not-the-nonce-we-sent"}},
    {"claims": {"iss": "http://127.0.0.1:1"}},
    {"exp_offset": -3600},
    {"foreign_key": True},
], ids=["wrong-audience", "bad-nonce", "wrong-issuer", "expired", "foreign-signature"])
async def test_a_bad_id_token_is_refused(site: Site, new_browser: Any,
                                         change: dict[str, Any]) -> None:
    sub, email = await new_person(site)
    browser = new_browser()
    callback = await sign_in_at_provider(site, browser, sub)
    await site.provider.tamper_next_id_token(**change)
    assert_refused(await open_callback(browser, callback), 400, "did not succeed")
    await _nothing_signed_in(site, browser, email)


async def test_an_unknown_provider_is_a_page(site: Site, new_browser: Any) -> None:
    async with new_browser().get(site.url + "/api/v1/auth/oidc/nope/start",
                                 allow_redirects=False) as response:
        assert response.status == 404
        assert response.content_type == "text/html"
        assert "No such sign-in provider" in await response.text()


async def test_provider_down_leaves_nothing_half_created(
    aiohttp_client: Any, make_settings: Any, new_browser: Any
) -> None:
    provider = OidcProviderProcess()
    provider.start()
    try:
        site = await make_site(provider, aiohttp_client, make_settings)
        sub, email = await new_person(site)
        browser = new_browser()
        callback = await sign_in_at_provider(site, browser, sub)
    finally:
        provider.stop()
    assert_refused(await open_callback(browser, callback), 503, "cannot be reached")
    await _nothing_signed_in(site, browser, email)
    metrics = await (await site.client.get("/metrics")).text()
    assert 'skillshare_oidc_callbacks_total{outcome="unavailable",provider="demo"} 1.0' in metrics
    assert await site.db["identities"].count_documents({}) == 0


async def test_start_with_the_provider_down_is_a_page(
    aiohttp_client: Any, make_settings: Any, new_browser: Any
) -> None:
    provider = OidcProviderProcess()  # never started: nothing listens on its port
    port = free_port()
    settings = make_settings(
        public_url=f"http://127.0.0.1:{port}", oidc_providers=[PROVIDER],
        oidc={PROVIDER: {"issuer": provider.issuer, "client_id": "c", "client_secret": "s"}})
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    async with new_browser().get(f"http://127.0.0.1:{port}{START}",
                                 allow_redirects=False) as response:
        assert response.status == 503
        assert response.content_type == "text/html"
        assert "cannot be reached" in await response.text()
    assert await client.app[DB]["oidc_flows"].count_documents({}) == 0


# ---- link and unlink from the profile -----------------------------------------------------


async def _link(site: Site, browser: aiohttp.ClientSession, token: str, sub: str) -> Outcome:
    async with browser.post(f"{site.url}/api/v1/auth/oidc/{PROVIDER}/link",
                            headers=bearer(token)) as response:
        assert response.status == 200, await response.text()
        url = (await response.json())["authorization_url"]
    return await open_callback(browser, await at_provider(browser, url, sub))


async def test_link_from_the_profile_then_sign_in_with_it(
    site: Site, new_browser: Any
) -> None:
    account = await register(site.client)  # unverified: linking needs no verified email
    sub, _ = await new_person(site, email=unique_email("elsewhere"))
    browser = new_browser()
    outcome = await _link(site, browser, account["access_token"], sub)
    assert outcome.status == 302 and outcome.location == site.url + "/#/profile"
    me = await (await site.client.get("/api/v1/users/me",
                                      headers=bearer(account["access_token"]))).json()
    assert [i["provider"] for i in me["identities"]] == ["demo"]

    other = new_browser()
    assert (await sign_in(site, other, sub)).status == 302
    assert (await refresh_with_cookie(site, other))["user"]["id"] == account["user"]["id"]


async def test_a_provider_account_links_to_one_account_only(
    site: Site, new_browser: Any
) -> None:
    sub, _ = await new_person(site)
    assert (await sign_in(site, new_browser(), sub)).status == 302
    someone = await register(site.client)
    outcome = await _link(site, new_browser(), someone["access_token"], sub)
    assert_refused(outcome, 400, "already linked to another account")


async def test_unlink_never_leaves_an_account_without_a_way_in(
    site: Site, new_browser: Any
) -> None:
    sub, email = await new_person(site)
    browser = new_browser()
    assert (await sign_in(site, browser, sub)).status == 302
    token = (await refresh_with_cookie(site, browser))["access_token"]
    unlink = f"/api/v1/auth/oidc/{PROVIDER}/link"

    resp = await site.client.delete(unlink, headers=bearer(token))
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "last_sign_in_method"

    password = "a new password for this account"
    resp = await site.client.post("/api/v1/auth/password/set", headers=bearer(token),
                                  json={"new_password": password})
    assert resp.status == 204
    resp = await site.client.post("/api/v1/auth/password/set", headers=bearer(token),
                                  json={"new_password": password})
    assert resp.status == 409

    assert (await site.client.delete(unlink, headers=bearer(token))).status == 204
    resp = await site.client.delete(unlink, headers=bearer(token))
    assert resp.status == 404
    me = await (await site.client.get("/api/v1/users/me", headers=bearer(token))).json()
    assert me["identities"] == [] and me["has_password"] is True
    login = await site.client.post("/api/v1/auth/login",
                                   json={"email": email, "password": password})
    assert login.status == 200
    actions = {a["action"] async for a in site.db["audit_log"].find({"target": me["id"]})}
    assert {"account.oidc_login", "account.password_set", "account.oidc_unlink"} <= actions


async def test_deleted_accounts_lose_their_identities_at_the_purge(
    provider: OidcProviderProcess, aiohttp_client: Any, make_settings: Any, new_browser: Any
) -> None:
    clock = FrozenClock()
    site = await make_site(provider, aiohttp_client, make_settings, clock=clock)
    sub, email = await new_person(site)
    browser = new_browser()
    assert (await sign_in(site, browser, sub)).status == 302
    pair = await refresh_with_cookie(site, browser)
    assert (await site.client.delete("/api/v1/users/me",
                                     headers=bearer(pair["access_token"]))).status == 204
    # deleted: the provider no longer signs into it
    assert_refused(await sign_in(site, new_browser(), sub), 400, "no longer active")

    clock.advance(31 * 86400)
    assert await site.client.app[PURGE].purge_due() == 1
    assert await site.db["identities"].count_documents({"subject": sub}) == 0


async def test_concurrent_unlinks_keep_one_way_in(
    provider: OidcProviderProcess, aiohttp_client: Any, make_settings: Any, new_browser: Any
) -> None:
    """Two providers on a password-less account, both unlinked at once: at
    most one unlink wins; a refused one (409) keeps its link."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    oidc = {}
    for name in ("demo", "other"):
        registered = await provider.register_client(f"{url}/api/v1/auth/oidc/{name}/callback")
        oidc[name] = {"issuer": provider.issuer, **registered}
    settings = make_settings(public_url=url, oidc_providers=["demo", "other"], oidc=oidc)
    client = await aiohttp_client(create_app(settings), server_kwargs={"port": port})
    site = Site(url=url, client=client, provider=provider)
    sub, _ = await new_person(site)
    browser = new_browser()
    assert (await sign_in(site, browser, sub)).status == 302
    token = (await refresh_with_cookie(site, browser))["access_token"]
    async with browser.post(f"{url}/api/v1/auth/oidc/other/link",
                            headers=bearer(token)) as response:
        link_url = (await response.json())["authorization_url"]
    linked = await open_callback(browser, await at_provider(browser, link_url, sub))
    assert linked.status == 302, linked

    statuses = sorted(r.status for r in await asyncio.gather(
        client.delete("/api/v1/auth/oidc/demo/link", headers=bearer(token)),
        client.delete("/api/v1/auth/oidc/other/link", headers=bearer(token)),
    ))
    # at most one wins (both may be refused when each saw the other's delete;
    # the person retries); the account always keeps a way in
    assert statuses in ([204, 409], [409, 409])
    me = await (await client.get("/api/v1/users/me", headers=bearer(token))).json()
    assert len(me["identities"]) == 2 - statuses.count(204) >= 1


async def test_starting_sign_ins_is_limited_per_ip(
    provider: OidcProviderProcess, aiohttp_client: Any, make_settings: Any, new_browser: Any
) -> None:
    site = await make_site(provider, aiohttp_client, make_settings, oidc_start_limit="2/minute")
    browser = new_browser()
    await start(site, browser)
    await start(site, browser)
    async with browser.get(site.url + START, allow_redirects=False) as response:
        assert response.status == 429
        assert response.content_type == "text/html"
        assert int(response.headers["Retry-After"]) >= 1
    assert await site.db["oidc_flows"].count_documents({}) == 2


# ---- linked providers on GET /users/me, through the read cache ------------------------------


async def _identity_hits(site: Site) -> float:
    """``GET /users/me`` replies whose providers came from the read cache."""
    text = await (await site.client.get("/metrics")).text()
    line = 'skillshare_read_cache_requests_total{namespace="identities",result="hit"} '
    return sum(float(row[len(line):]) for row in text.splitlines() if row.startswith(line))


async def test_my_linked_providers_are_cached_and_links_show_at_once_on_every_node(
    provider: OidcProviderProcess, aiohttp_client: Any, make_settings: Any, new_browser: Any,
    redis_url: str,
) -> None:
    """GET /users/me reads the caller's linked providers from the read cache;
    a link, a sign-in (``last_used_at``) and an unlink made on one node show
    on the other at once."""
    one = await make_site(provider, aiohttp_client, make_settings, read_cache_ttl=3600.0,
                          redis_url=redis_url)
    two = await make_site(provider, aiohttp_client, make_settings, read_cache_ttl=3600.0,
                          redis_url=redis_url)
    account = await register(one.client)
    headers = bearer(account["access_token"])

    async def providers_on(site: Site) -> list[tuple[str, str | None]]:
        me = await (await site.client.get("/api/v1/users/me", headers=headers)).json()
        return [(i["provider"], i["last_used_at"]) for i in me["identities"]]

    async def until(site: Site, check: Callable[[list[tuple[str, str | None]]], bool]) -> None:
        async def wait() -> None:
            while not check(await providers_on(site)):
                await asyncio.sleep(0.02)
        await asyncio.wait_for(wait(), timeout=20)

    assert await providers_on(two) == []
    assert await providers_on(two) == []
    assert await _identity_hits(two) >= 1  # the second read was served from the cache

    sub, _ = await new_person(one, email=unique_email("elsewhere"))
    await _link(one, new_browser(), account["access_token"], sub)
    await until(two, lambda found: [p for p, _ in found] == ["demo"])
    assert [p for p, _ in await providers_on(one)] == ["demo"]
    linked_used = (await providers_on(two))[0][1]

    await asyncio.sleep(0.01)  # a later last_used_at
    assert (await sign_in(one, new_browser(), sub)).status == 302
    await until(two, lambda found: found[0][1] != linked_used)

    resp = await one.client.delete(f"/api/v1/auth/oidc/{PROVIDER}/link", headers=headers)
    assert resp.status == 204
    await until(two, lambda found: found == [])
    assert await providers_on(one) == []

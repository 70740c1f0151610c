"""Access tokens: pinned algorithm, required claims, key rotation."""

from __future__ import annotations

import jwt
import pytest

from server.auth.tokens import AccessTokens, key_id
from server.clock import FrozenClock
from server.errors import TokenExpired, Unauthorized
from tests.support.api import bearer, error_of, register

OLD_KEY = "old-key-" + "o" * 40
NEW_KEY = "new-key-" + "n" * 40


def make(keys, clock=None, **kw):
    return AccessTokens(keys=keys, issuer=kw.get("iss", "skillshare"),
                        audience=kw.get("aud", "skillshare-api"), ttl=900,
                        clock=clock or FrozenClock())


def test_claims_and_kid():
    tokens = make([NEW_KEY])
    token, exp = tokens.issue(user_id="u1", session_id="s1", role="user")
    header = jwt.get_unverified_header(token)
    assert header["kid"] == key_id(NEW_KEY) and header["alg"] == "HS256"
    payload = jwt.decode(token, NEW_KEY, algorithms=["HS256"], audience="skillshare-api")
    assert {"exp", "iat", "iss", "aud", "sub", "sid", "jti"} <= set(payload)
    claims = tokens.decode(token)
    assert (claims.user_id, claims.session_id, claims.expires_at) == ("u1", "s1", exp)


def test_old_key_still_verifies_after_rotation():
    clock = FrozenClock()
    old_token, _ = make([OLD_KEY], clock).issue(user_id="u", session_id="s", role="user")
    rotated = make([NEW_KEY, OLD_KEY], clock)
    assert rotated.decode(old_token).user_id == "u"
    new_token, _ = rotated.issue(user_id="u", session_id="s", role="user")
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(NEW_KEY)
    with pytest.raises(Unauthorized):
        make([NEW_KEY], clock).decode(old_token)  # old key retired


def test_refuses_alg_none_wrong_audience_missing_claims_and_expired():
    clock = FrozenClock()
    tokens = make([NEW_KEY], clock)
    none_token = jwt.encode({"sub": "u", "sid": "s"}, key=None, algorithm="none",
                            headers={"kid": key_id(NEW_KEY)})
    other_aud = make([NEW_KEY], clock, aud="someone-else").issue(
        user_id="u", session_id="s", role="user")[0]
    other_iss = make([NEW_KEY], clock, iss="evil").issue(
        user_id="u", session_id="s", role="user")[0]
    missing = jwt.encode({"sub": "u", "exp": clock.time() + 60}, NEW_KEY, algorithm="HS256",
                         headers={"kid": key_id(NEW_KEY)})
    for token in (none_token, other_aud, other_iss, missing, "a.b.c", ""):
        with pytest.raises(Unauthorized):
            tokens.decode(token)
    token, _ = tokens.issue(user_id="u", session_id="s", role="user")
    clock.advance(901 + 5)
    with pytest.raises(TokenExpired):
        tokens.decode(token)


async def test_rotation_through_the_api(make_client):
    old_client = await make_client(secret_key=[OLD_KEY])
    account = await register(old_client)
    rotated = await make_client(secret_key=[NEW_KEY, OLD_KEY])
    resp = await rotated.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert resp.status == 200
    retired = await make_client(secret_key=[NEW_KEY])
    resp = await retired.get("/api/v1/users/me", headers=bearer(account["access_token"]))
    assert (await error_of(resp))["code"] == "unauthorized"


def test_a_remembered_token_still_expires_and_a_tampered_one_is_refused():
    """Verified tokens are remembered (the signature is checked once per
    token), but expiry is checked on every use, and a token differing from
    a remembered one in any byte is verified afresh."""
    clock = FrozenClock()
    tokens = make([NEW_KEY], clock)
    token, _ = tokens.issue(user_id="u", session_id="s", role="user")
    assert tokens.decode(token) == tokens.decode(token)
    head, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(jwt.utils.base64url_decode(payload).replace(
        b'"role":"user"', b'"role":"admin"')).decode()
    for forged in (f"{head}.{forged_payload}.{signature}", token[:-2] + "xx"):
        with pytest.raises(Unauthorized):
            tokens.decode(forged)
    clock.advance(900 + 5)
    with pytest.raises(TokenExpired):
        tokens.decode(token)
    with pytest.raises(TokenExpired):  # and stays refused
        tokens.decode(token)

"""Bad human text is a 400 validation_error naming the field, never a 500
and never stored (issue 8, item 7): control characters, terminal escapes,
bidi overrides, invisible-only text; time zones must be real IANA zones."""

from __future__ import annotations

import pytest

from server.schemas.human_text import TextError, clean_text
from tests.support.api import bearer, error_of, register
from tests.support.realtime import SocketUser, new_client_id, open_direct, register_user

BAD_LINE = {
    "nul": "Ada\x00Lovelace",
    "escape": "Ada \x1b[31mred\x1b[0m",
    "c1_control": "Ada\x9bLovelace",
    "bidi_override": "Ada \u202etxt.exe",
    "bidi_isolate": "Ada \u2066x\u2069",
    "rtl_mark": "Ada\u200f",
    "zero_width_only": "\u200b\u200c\u200d",
    "word_joiner_and_bom": "\u2060\ufeff",
    "hangul_filler": "\u3164",
    "newline": "Ada\nLovelace",
    "line_separator": "Ada\u2028Lovelace",
}
# (multi-line text keeps newlines and turns U+2028/2029 into newlines)
BAD_MULTI = {k: v for k, v in BAD_LINE.items() if k not in ("newline", "line_separator")}


def test_clean_text_accepts_real_text_and_normalises_it():
    assert clean_text("Cafe\u0301", multiline=False) == "Caf\u00e9"  # NFC
    assert clean_text("line 1\r\nline 2\rline 3", multiline=True) == "line 1\nline 2\nline 3"
    assert clean_text("a\tb\n", multiline=True) == "a\tb\n"
    assert clean_text("👩\u200d💻 dev", multiline=False) == "👩\u200d💻 dev"  # ZWJ emoji
    assert clean_text("עברית and العربية", multiline=False)
    assert clean_text("", multiline=True) == ""
    for bad in BAD_LINE.values():
        with pytest.raises(TextError):
            clean_text(bad, multiline=False)
    for bad in BAD_MULTI.values():
        with pytest.raises(TextError):
            clean_text(bad, multiline=True)


async def assert_refused(resp, field: str) -> None:
    assert resp.status == 400, (resp.status, await resp.text())
    error = await error_of(resp)
    assert error["code"] == "validation_error"
    assert any(d["field"] == field for d in error["details"]), error


@pytest.mark.parametrize("zone", ["America", "Etc", "Europe", "posix", "right", "Not/AZone",
                                  "../../etc/passwd", "Europe/", "."])
async def test_timezone_must_be_an_iana_zone(client, zone):
    user = await register(client)
    resp = await client.patch("/api/v1/users/me", headers=bearer(user["access_token"]),
                              json={"timezone": zone})
    await assert_refused(resp, "timezone")
    ok = await client.patch("/api/v1/users/me", headers=bearer(user["access_token"]),
                            json={"timezone": "America/New_York"})
    assert ok.status == 200 and (await ok.json())["timezone"] == "America/New_York"


@pytest.mark.parametrize("case", sorted(BAD_LINE))
async def test_profile_text_fields_refuse_bad_text(client, case):
    user = await register(client)
    headers = bearer(user["access_token"])
    bad = BAD_LINE[case]
    await assert_refused(await client.patch("/api/v1/users/me", headers=headers,
                                            json={"display_name": bad}), "display_name")
    if case in BAD_MULTI:
        await assert_refused(await client.patch("/api/v1/users/me", headers=headers,
                                                json={"bio": bad}), "bio")
    await assert_refused(await client.patch("/api/v1/users/me", headers=headers, json={
        "skills_offered": [{"name": bad}]}), "skills_offered.0.name")
    await assert_refused(await client.post("/api/v1/auth/register", json={
        "email": "x@example.com", "password": "correct horse battery", "display_name": bad,
    }), "display_name")
    me = await (await client.get("/api/v1/users/me", headers=headers)).json()
    assert me["display_name"] == "Test User" and me["bio"] == ""


async def test_bio_keeps_line_breaks_and_names_are_normalised(client):
    user = await register(client)
    resp = await client.patch("/api/v1/users/me", headers=bearer(user["access_token"]), json={
        "display_name": "Rene\u0301", "bio": "Line one\r\nLine two\twith a tab"})
    assert resp.status == 200, await resp.text()
    me = await resp.json()
    assert me["display_name"] == "Ren\u00e9"
    assert me["bio"] == "Line one\nLine two\twith a tab"


@pytest.mark.parametrize("case", ["nul", "escape", "bidi_override", "zero_width_only"])
async def test_marketplace_and_room_text_fields_refuse_bad_text(client, case):
    bad = BAD_LINE[case]
    teacher, learner = await register(client), await register(client)
    th, lh = bearer(teacher["access_token"]), bearer(learner["access_token"])
    base = {"title": "Python basics", "description": "Loops.", "category": "programming"}
    await assert_refused(await client.post("/api/v1/skills", headers=th,
                                           json={**base, "title": bad}), "title")
    await assert_refused(await client.post("/api/v1/skills", headers=th,
                                           json={**base, "description": bad}), "description")
    await assert_refused(await client.post("/api/v1/skills", headers=th,
                                           json={**base, "tags": ["ok", bad]}), "tags.1")
    created = await client.post("/api/v1/skills", headers=th, json=base)
    assert created.status == 201
    listing = await created.json()
    await assert_refused(await client.patch(f"/api/v1/skills/{listing['id']}", headers=th,
                                            json={"title": bad}), "title")
    await assert_refused(await client.post(f"/api/v1/skills/{listing['id']}/requests",
                                           headers=lh, json={"message": bad}), "message")
    await assert_refused(await client.post("/api/v1/rooms", headers=th, json={
        "type": "group", "name": bad, "member_ids": [learner["user"]["id"]]}), "name")


def test_review_comments_and_moderation_reasons_refuse_bad_text():
    from server.schemas.marketplace import ReasonIn, ReviewIn

    for bad in BAD_MULTI.values():
        with pytest.raises(ValueError):
            ReviewIn(rating=5, comment=bad)
        with pytest.raises(ValueError):
            ReasonIn(reason=bad)
    assert ReviewIn(rating=5, comment="Great\nteacher").comment == "Great\nteacher"


@pytest.fixture
async def node(make_client):
    client = await make_client()
    return str(client.make_url("")).rstrip("/")


async def test_chat_bodies_refuse_bad_text(node):
    alice, bob = await register_user(node, "alice"), await register_user(node, "bob")
    room = await open_direct(node, alice["access_token"], bob["id"])
    a = await SocketUser(node, alice["access_token"]).connect()
    try:
        for case, bad in BAD_MULTI.items():
            ack = await a.call("message:send", {"room_id": room["id"],
                                                "client_id": new_client_id(), "body": bad})
            assert ack["ok"] is False, (case, ack)
            assert ack["error"]["code"] == "validation_error", (case, ack)
            assert ack["error"]["details"][0]["field"] == "body"
        ack = await a.call("message:send", {"room_id": room["id"], "client_id": new_client_id(),
                                            "body": "two\u2028lines, cafe\u0301"})
        assert ack["ok"] and ack["message"]["body"] == "two\nlines, caf\u00e9"
        assert a.sio.connected
    finally:
        await a.close()


HUMAN_FIELDS = {"display_name", "bio", "name", "title", "description", "message", "comment",
                "reason", "tags", "languages"}


def _models_of(annotation) -> list:
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_of(arg)]


async def test_every_human_text_field_of_every_request_body_uses_the_validator(client):
    """Guards new fields: every request body field (nested ones too) with a
    human-text name refuses a bidi override."""
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    from server.keys import ROUTE_SPECS

    seen, checked = set(), []
    todo = [spec.body for spec in client.app[ROUTE_SPECS] if spec.body is not None]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            todo += _models_of(info.annotation)
            if name not in HUMAN_FIELDS or name == "name" and model.__name__ == "IceServer":
                continue
            adapter = TypeAdapter(Annotated[info.annotation, *info.metadata] if info.metadata
                                  else info.annotation)
            bad = "Ada \u202etxt.exe"
            value = [bad] if name in ("tags", "languages") else bad
            if name == "languages":
                # validated by the model's own field validator
                with pytest.raises(ValidationError):
                    model.model_validate({name: value})
            else:
                with pytest.raises(ValidationError):
                    adapter.validate_python(value)
            checked.append(f"{model.__name__}.{name}")
    assert {"RegisterIn.display_name", "ProfilePatch.bio", "Skill.name", "ListingIn.title",
            "ListingIn.description", "ListingIn.tags", "RequestIn.message", "ReviewIn.comment",
            "ReasonIn.reason", "CreateRoom.name"} <= set(checked), checked

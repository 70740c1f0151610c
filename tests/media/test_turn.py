"""TURN credentials follow coturn's use-auth-secret scheme."""

import base64
import hashlib
import hmac

import pytest

from server.media.turn import ice_servers, to_rtc_ice_servers, turn_credentials

NOW = 1_700_000_000.75


def test_stun_and_turn_entries() -> None:
    body = ice_servers(
        user_id="u42",
        stun_urls=["stun:stun.example.org:3478"],
        turn_urls=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
        turn_secret="topsecret",
        ttl_s=3600,
        now=NOW,
    )
    assert body["ttl"] == 3600
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
    assert turn["username"] == "1700003600:u42"
    expected = base64.b64encode(
        hmac.new(b"topsecret", b"1700003600:u42", hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected


def test_known_vector() -> None:
    # printf '%s' "1700003600:alice" | openssl dgst -sha1 -hmac "s3cret" -binary | base64
    username, credential = turn_credentials(user_id="alice", secret="s3cret", ttl_s=3600, now=1_700_000_000)
    assert username == "1700003600:alice"
    assert credential == "YAFdW/YDZewZsR1QSgUk2IrfbRI="


def test_empty_lists_are_omitted() -> None:
    assert ice_servers(
        user_id="u", stun_urls=[], turn_urls=[], turn_secret="s", ttl_s=60, now=NOW
    ) == {"ice_servers": [], "ttl": 60}
    only_turn = ice_servers(
        user_id="u", stun_urls=[], turn_urls=["turn:t:3478"], turn_secret="s", ttl_s=60, now=NOW
    )
    assert [e["urls"] for e in only_turn["ice_servers"]] == [["turn:t:3478"]]


def test_turn_without_secret_is_omitted() -> None:
    body = ice_servers(
        user_id="u", stun_urls=["stun:s:3478"], turn_urls=["turn:t:3478"], turn_secret=None, ttl_s=60, now=NOW
    )
    assert body["ice_servers"] == [{"urls": ["stun:s:3478"]}]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        turn_credentials(user_id="a:b", secret="s", ttl_s=60, now=NOW)
    with pytest.raises(ValueError):
        turn_credentials(user_id="a", secret="s", ttl_s=0, now=NOW)


def test_to_rtc_ice_servers() -> None:
    body = ice_servers(
        user_id="u", stun_urls=["stun:s:3478"], turn_urls=["turn:t:3478"], turn_secret="k", ttl_s=60, now=NOW
    )
    stun, turn = to_rtc_ice_servers(body["ice_servers"])
    assert stun.urls == ["stun:s:3478"] and stun.username is None
    assert turn.username == body["ice_servers"][1]["username"]
    assert turn.credential == body["ice_servers"][1]["credential"]

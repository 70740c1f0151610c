"""A seeded Engine.IO / Socket.IO protocol fuzzer: named attacks, each one
misbehaving connection (websocket or long-polling) against a real node,
reporting whether the node closed it. ``tests/e2e/test_protocol_fuzz.py``
runs them and checks the node's health, memory and log around them."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from tests.support.rawsocket import CLOSED, RawSocket, acks_in

MAX_FRAME = 2 * 64 * 1024  # engine.io's limit at the default SOCKET_MAX_PAYLOAD
RESERVED = ["connect", "disconnect", "connect_error", "disconnecting", "newListener",
            "removeListener", "*"]
VALID_EVENT = '421["presence:set",{"status":"away"}]'
CLOSE_TIMEOUT_S = 10.0


@dataclass
class Outcome:
    attack: str
    closed: bool
    must_close: bool
    detail: str = ""


Attack = Callable[["Fuzzer", random.Random], Awaitable[Outcome]]


def _junk(rng: random.Random, n: int) -> str:
    alphabet = '[]{}",:0123456789abcxyz-/\\\x00\x1e\u202e\ud7ff '
    return "".join(rng.choice(alphabet) for _ in range(n))


class Fuzzer:
    """Runs attacks against ``base_url`` with the given users' tokens."""

    def __init__(self, base_url: str, tokens: list[str], *, half_open_wait: float) -> None:
        self.base_url = base_url
        self.tokens = tokens
        self.half_open_wait = half_open_wait

    def token(self, rng: random.Random) -> str:
        return rng.choice(self.tokens)

    async def frames(self, name: str, rng: random.Random, frames: list[str | bytes], *,
                     connect: bool = True, must_close: bool = True) -> Outcome:
        raw = RawSocket(self.base_url)
        try:
            await raw.open(self.token(rng) if connect else None)
            for frame in frames:
                if not await raw.send(frame):
                    break
            try:
                await raw.until_closed(timeout=CLOSE_TIMEOUT_S)
                return Outcome(name, True, must_close)
            except TimeoutError:
                return Outcome(name, False, must_close, f"{len(frames)} frames, still open")
        finally:
            await raw.close()


# -- engine.io layer ---------------------------------------------------------

async def binary_frame(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("binary_frame", rng, [rng.randbytes(rng.randint(1, 4096))])


async def base64_binary(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("base64_binary", rng,
                          ["b" + base64.b64encode(rng.randbytes(64)).decode()])


async def empty_frame(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("empty_frame", rng, [""], connect=rng.random() < 0.5)


async def bad_engineio_type(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("bad_engineio_type", rng,
                          [rng.choice("0789xZ!{") + _junk(rng, rng.randint(0, 40))],
                          connect=rng.random() < 0.5)


async def ping_flood(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("ping_flood", rng, ["2"] * rng.randint(1, 500))


async def control_flood(f: Fuzzer, rng: random.Random) -> Outcome:
    kind = rng.choice("356")  # pong, upgrade, noop
    return await f.frames(f"control_flood_{kind}", rng, [kind] * 2000)


async def oversized_frame(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("oversized_frame", rng,
                          ['42["message:send",' + "x" * (MAX_FRAME + rng.randint(1, 10_000))])


async def half_open(f: Fuzzer, rng: random.Random) -> Outcome:
    """Connects, then neither reads nor answers pings."""
    raw = RawSocket(f.base_url, answer_pings=False)
    try:
        await raw.open(f.token(rng))
        await asyncio.sleep(f.half_open_wait)
        try:
            await raw.until_closed(timeout=CLOSE_TIMEOUT_S)
            return Outcome("half_open", True, True)
        except TimeoutError:
            return Outcome("half_open", False, True, "never timed out")
    finally:
        await raw.close()


# -- socket.io layer ---------------------------------------------------------

async def bad_socketio_type(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("bad_socketio_type", rng,
                          ["4" + rng.choice("4789") + _junk(rng, rng.randint(0, 40))])


async def bad_json(f: Fuzzer, rng: random.Random) -> Outcome:
    valid = '42' + json.dumps(["message:send", {"room_id": "r", "client_id": "c",
                                                "body": _junk(rng, 30)}])
    cut = rng.randint(3, len(valid) - 2)
    return await f.frames("bad_json", rng, [valid[:cut] + rng.choice(["", "{", "[", ",,", '"'])])


async def huge_attachments(f: Fuzzer, rng: random.Random) -> Outcome:
    count = rng.choice([1, 2, 1000, 10**9, 99_999_999])
    kind = rng.choice("56")
    frames: list[str | bytes] = [f'4{kind}{count}-["message:send",{{"_placeholder":true,"num":0}}]']
    frames += [rng.randbytes(rng.randint(1, 64 * 1024)) for _ in range(rng.randint(0, 30))]
    return await f.frames("huge_attachments", rng, frames)


async def reserved_event(f: Fuzzer, rng: random.Random) -> Outcome:
    ack = str(rng.randint(0, 99)) if rng.random() < 0.5 else ""
    name = rng.choice(RESERVED)
    frame = f"42{ack}" + json.dumps([name, {}, {"token": f.token(rng)}][: rng.randint(1, 3)])
    return await f.frames("reserved_event", rng, [frame] * rng.randint(1, 5))


async def unsolicited_ack(f: Fuzzer, rng: random.Random) -> Outcome:
    frames = [f"43{rng.randint(0, 10**6)}" + json.dumps([{"ok": True}]) for _ in range(5)]
    rng.shuffle(frames)
    return await f.frames("unsolicited_ack", rng, frames)


async def other_namespace(f: Fuzzer, rng: random.Random) -> Outcome:
    ns = "/x" + _junk(rng, rng.randint(0, 12)).replace(",", "")  # never "/" itself
    frame = rng.choice([f"40{ns}," + json.dumps({"token": f.token(rng)}),
                        f"42{ns}," + '["presence:set",{}]', f"41{ns},"])
    return await f.frames("other_namespace", rng, [frame], connect=rng.random() < 0.5)


async def repeated_connect(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("repeated_connect", rng,
                          ["40" + json.dumps({"token": f.token(rng)})] * rng.randint(1, 5))


async def deep_nesting(f: Fuzzer, rng: random.Random) -> Outcome:
    depth = rng.randint(5_000, 60_000)
    return await f.frames("deep_nesting", rng,
                          ['42["message:send",' + "[" * depth + "]" * depth + "]"])


async def malformed_event(f: Fuzzer, rng: random.Random) -> Outcome:
    frame = rng.choice(["42{}", '42"presence:set"', "42[]", "42[5,{}]", "42[null]", '42[{"a":1}]',
                        "42" + "9" * rng.randint(101, 300) + '["presence:set",{}]', "4", "42"])
    return await f.frames("malformed_event", rng, [frame])


async def event_before_connect(f: Fuzzer, rng: random.Random) -> Outcome:
    return await f.frames("event_before_connect", rng, [VALID_EVENT], connect=False)


async def unknown_event_flood(f: Fuzzer, rng: random.Random) -> Outcome:
    """Well-formed events the node refuses: the rate limit, then the flood
    limiter closes it."""
    frames = [f"42{i}" + json.dumps([f"no:such:{rng.randint(0, 9)}", {}]) for i in range(600)]
    return await f.frames("unknown_event_flood", rng, frames)


async def mutation(f: Fuzzer, rng: random.Random) -> Outcome:
    """A valid event with random edits: the node either closes the
    connection or still acks a valid event afterwards."""
    chars = list(VALID_EVENT)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars))
        op = rng.choice("dri")
        if op == "d":
            del chars[i]
        elif op == "r":
            chars[i] = rng.choice('[]{}",:0123456789ax\x00')
        else:
            chars.insert(i, rng.choice('[]{}",:0123456789ax'))
    raw = RawSocket(f.base_url)
    try:
        await raw.open(f.token(rng))
        await raw.send("".join(chars))
        await raw.send('4299["presence:set",{"status":"online"}]')
        while True:
            try:
                frame = await raw.recv(timeout=CLOSE_TIMEOUT_S)
            except TimeoutError:
                return Outcome("mutation", False, True, f"neither closed nor acked: {chars!r}")
            if frame is CLOSED:
                return Outcome("mutation", True, False)
            if 99 in acks_in([frame]):
                return Outcome("mutation", False, False)
    finally:
        await raw.close()


# -- long-polling transport --------------------------------------------------

async def polling_junk(f: Fuzzer, rng: random.Random) -> Outcome:
    """Engine.IO over long-polling: handshake, CONNECT, then a junk body;
    afterwards the session must be gone (400) or closed (a CLOSE packet)."""
    url = f"{f.base_url}/socket.io/?EIO=4&transport=polling"
    junk = rng.choice([
        b"\xff\xfe not utf-8", "\x1e".join(["3"] * 17).encode(), b"bAAAA", b"x",
        b'42["disconnect",{}]', b'451-["x",{"_placeholder":true,"num":0}]', b"4{",
        b"2", b"43" + str(rng.randint(0, 99)).encode() + b"[{}]",
        ("40" + json.dumps({"token": f.token(rng)})).encode(),
    ])
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            opening = await resp.text()
        sid = json.loads(opening[1:])["sid"]
        session_url = f"{url}&sid={sid}"
        async with http.post(session_url, data=("40" + json.dumps({"token": f.token(rng)}))) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(session_url) as resp:
            connected = await resp.text()
        if not connected.startswith("40{"):
            return Outcome("polling_junk", False, True, f"no CONNECT reply: {connected[:80]}")
        async with http.post(session_url, data=junk) as resp:
            await resp.read()
        async with http.get(session_url, timeout=aiohttp.ClientTimeout(total=CLOSE_TIMEOUT_S)) as resp:
            body = await resp.text()
            closed = resp.status == 400 or "\x1e1" in "\x1e" + body
        return Outcome("polling_junk", closed, True, "" if closed else f"{resp.status} {body[:80]}")


ATTACKS: list[Attack] = [
    binary_frame, base64_binary, empty_frame, bad_engineio_type, ping_flood, control_flood,
    oversized_frame, half_open, bad_socketio_type, bad_json, huge_attachments, reserved_event,
    unsolicited_ack, other_namespace, repeated_connect, deep_nesting, malformed_event,
    event_before_connect, unknown_event_flood, mutation, polling_junk,
]


async def acks_out_of_order(base_url: str, token: str, rng: random.Random) -> None:
    """A well-behaved raw client choosing its own ack ids, in any order and
    repeated: every event is acked under its id and the socket stays."""
    ids = [rng.randint(0, 10**6) for _ in range(5)]
    ids += ids[:2]
    rng.shuffle(ids)
    raw = await RawSocket(base_url).open(token)
    try:
        for ack_id in ids:
            await raw.send(f"42{ack_id}" + '["presence:set",{"status":"online"}]')
        seen: dict[int, dict] = {}
        while set(seen) != set(ids):
            frame = await raw.recv(timeout=CLOSE_TIMEOUT_S)
            assert frame is not CLOSED, f"closed a well-behaved client (acks {seen})"
            seen.update(acks_in([frame]))
        assert all(ack["ok"] for ack in seen.values()), seen
    finally:
        await raw.close()

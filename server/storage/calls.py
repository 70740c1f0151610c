"""Call state: one record per call and a "current call" pointer per user.
``MemoryCallStore`` for one node; ``RedisCallStore`` shares it between nodes.

Redis keyspace (all under ``<prefix>{calls}:``, ``skillshare:{calls}:`` by
default, shortened to ``{calls}:`` below; the hash tag keeps every key in one
slot, so the scripts, which touch a call and both users' pointers, also run
on a Redis Cluster):
- ``{calls}:call:<id>``  hash: caller, callee, state, audio, video, created_at,
  accepted_at, ended_at, reason, ended_by, relay_node, ``stats:<uid>`` flags.
  TTL: ring timeout + margin while ringing, the maximum call duration while
  active, a short grace once final (so late events get a clear answer).
- ``{calls}:user:<uid>``  the id of the user's ringing or active call (same TTL).
- ``{calls}:ringing``     sorted set of ringing call ids scored by ring deadline.
- ``{calls}:away``        sorted set of ``<call id> <user id>``: a participant of
  an active call with no socket left, scored by the end of their grace
  period (the hash holds ``away:<uid>`` meanwhile).
- ``{calls}:relay_node:<node>``  set while that node's media relay is alive
  (short TTL, refreshed by the node); a call whose relay node is gone may be
  claimed by another node.

Every state change is one Lua script: creating a call checks both users'
pointers (busy), and a transition only happens from the states the caller
expects, so two nodes racing to end, accept or time out the same call agree
on exactly one winner, and only the winner notifies."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import redis.asyncio as redis

from ..redis_keys import RedisKeys
from .redis_replies import text

RINGING = "ringing"
ACTIVE = "active"
ENDED = "ended"
REJECTED = "rejected"
MISSED = "missed"
LIVE_STATES = (RINGING, ACTIVE)
FINAL_STATES = (ENDED, REJECTED, MISSED)

CALLER_BUSY = "caller_busy"
CALLEE_BUSY = "callee_busy"
KEY_PREFIX = RedisKeys().calls  # with the default key prefix; one hash slot for all
MEMORY_PURGE_INTERVAL_S = 1.0  # how often MemoryCallStore drops expired calls
SETUP_OK = "ok"  # the stats flag of a participant whose media flowed in time


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    caller: str
    callee: str
    state: str
    audio: bool
    video: bool
    created_at: float
    accepted_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    ended_by: str | None = None
    relay_node: str | None = None
    stats_from: frozenset[str] = field(default_factory=frozenset)
    setup_ok: frozenset[str] = field(default_factory=frozenset)  # reported media within the target
    away: frozenset[str] = field(default_factory=frozenset)  # participants in their grace period

    @property
    def participants(self) -> tuple[str, str]:
        return (self.caller, self.callee)

    def other(self, user_id: str) -> str:
        return self.callee if user_id == self.caller else self.caller


def _opt_float(value: Any) -> float | None:
    return float(value) if value not in (None, "", b"") else None


def _opt_str(value: Any) -> str | None:
    return value or None


def _record(call_id: str, raw: dict[str, str]) -> CallRecord:
    return CallRecord(
        id=call_id, caller=raw["caller"], callee=raw["callee"], state=raw["state"],
        audio=raw.get("audio") == "1", video=raw.get("video") == "1",
        created_at=float(raw["created_at"]), accepted_at=_opt_float(raw.get("accepted_at")),
        ended_at=_opt_float(raw.get("ended_at")), reason=_opt_str(raw.get("reason")),
        ended_by=_opt_str(raw.get("ended_by")), relay_node=_opt_str(raw.get("relay_node")),
        stats_from=frozenset(k[6:] for k in raw if k.startswith("stats:")),
        setup_ok=frozenset(k[6:] for k, v in raw.items() if k.startswith("stats:") and v == SETUP_OK),
        away=frozenset(k[5:] for k in raw if k.startswith("away:")),
    )


def _fields(call: CallRecord) -> dict[str, str]:
    return {
        "caller": call.caller, "callee": call.callee, "state": call.state,
        "audio": "1" if call.audio else "0", "video": "1" if call.video else "0",
        "created_at": repr(call.created_at),
    }


class CallStore(Protocol):
    """What ``CallService`` (and ``RelayLink``) need of the call store;
    ``MemoryCallStore`` (one node) and ``RedisCallStore`` (shared between
    nodes) below. ``create`` answers the busy party (``CALLER_BUSY`` /
    ``CALLEE_BUSY``) or ``None``; ``transition`` answers ``(changed,
    record)``, changing only a call in one of the ``expect`` states."""

    async def create(self, call: CallRecord, *, ring_deadline: float, ttl: float) -> str | None: ...
    async def get(self, call_id: str) -> CallRecord | None: ...
    async def current(self, user_id: str) -> str | None: ...
    async def transition(
        self, call_id: str, *, expect: tuple[str, ...], to: str, ttl: float,
        accepted_at: float | None = None, ended_at: float | None = None,
        reason: str | None = None, ended_by: str | None = None,
    ) -> tuple[bool, CallRecord | None]: ...
    async def due_ringing(self, now: float, *, limit: int = 100) -> list[str]: ...
    async def claim_relay(self, call_id: str, node_id: str) -> str | None: ...
    async def relay_node_alive(self, node_id: str, *, ttl: float) -> None: ...
    async def relay_node_gone(self, node_id: str) -> None: ...
    async def mark_away(self, call_id: str, user_id: str, *, deadline: float) -> bool: ...
    async def clear_away(self, call_id: str, user_id: str) -> bool: ...
    async def due_away(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]: ...
    async def release_relay(self, call_id: str, node_id: str) -> None: ...
    async def mark_stats(self, call_id: str, user_id: str, result: str = "1") -> bool: ...


class MemoryCallStore:
    """One node: plain dicts; every method runs without awaiting, so each is
    atomic on the event loop. Expiry is checked lazily against ``now``, and
    expired calls nobody asks about again are dropped as new calls come in
    (at most once per ``MEMORY_PURGE_INTERVAL_S``), so the maps only hold
    live calls and recently ended ones."""

    def __init__(self, now: Any) -> None:
        self._now = now  # () -> epoch seconds
        self._calls: dict[str, tuple[CallRecord, float]] = {}
        self._users: dict[str, str] = {}
        self._ringing: dict[str, float] = {}
        self._away: dict[tuple[str, str], float] = {}
        self._relay_nodes: dict[str, float] = {}  # node -> alive until
        self._next_purge = 0.0

    def __len__(self) -> int:
        return len(self._calls)

    def _purge_expired(self) -> None:
        now = self._now()
        if now < self._next_purge:
            return
        self._next_purge = now + MEMORY_PURGE_INTERVAL_S
        for call, expires in list(self._calls.values()):
            if expires <= now:
                self._drop(call)

    def _live(self, call_id: str) -> CallRecord | None:
        entry = self._calls.get(call_id)
        if entry is None:
            return None
        call, expires = entry
        if expires <= self._now():
            self._drop(call)
            return None
        return call

    def _drop(self, call: CallRecord) -> None:
        self._calls.pop(call.id, None)
        self._ringing.pop(call.id, None)
        for uid in call.participants:
            self._away.pop((call.id, uid), None)
        for uid in call.participants:
            if self._users.get(uid) == call.id:
                del self._users[uid]

    def _busy(self, user_id: str) -> bool:
        call_id = self._users.get(user_id)
        call = self._live(call_id) if call_id else None
        return call is not None and call.state in LIVE_STATES

    async def create(self, call: CallRecord, *, ring_deadline: float, ttl: float) -> str | None:
        self._purge_expired()
        if self._busy(call.caller):
            return CALLER_BUSY
        if self._busy(call.callee):
            return CALLEE_BUSY
        self._calls[call.id] = (call, self._now() + ttl)
        self._users[call.caller] = self._users[call.callee] = call.id
        self._ringing[call.id] = ring_deadline
        return None

    async def get(self, call_id: str) -> CallRecord | None:
        return self._live(call_id)

    async def current(self, user_id: str) -> str | None:
        call_id = self._users.get(user_id)
        call = self._live(call_id) if call_id else None
        return call.id if call is not None and call.state in LIVE_STATES else None

    async def transition(
        self, call_id: str, *, expect: tuple[str, ...], to: str, ttl: float,
        accepted_at: float | None = None, ended_at: float | None = None,
        reason: str | None = None, ended_by: str | None = None,
    ) -> tuple[bool, CallRecord | None]:
        call = self._live(call_id)
        if call is None:
            return False, None
        if call.state not in expect:
            return False, call
        changes: dict[str, Any] = {"state": to}
        if accepted_at is not None:
            changes["accepted_at"] = accepted_at
        if ended_at is not None:
            changes.update(ended_at=ended_at, reason=reason, ended_by=ended_by)
        call = replace(call, **changes)
        self._calls[call_id] = (call, self._now() + ttl)
        self._ringing.pop(call_id, None)
        if to in FINAL_STATES:
            for uid in call.participants:
                self._away.pop((call_id, uid), None)
                if self._users.get(uid) == call_id:
                    del self._users[uid]
        return True, call

    async def due_ringing(self, now: float, *, limit: int = 100) -> list[str]:
        return [cid for cid, deadline in self._ringing.items() if deadline <= now][:limit]

    async def claim_relay(self, call_id: str, node_id: str) -> str | None:
        """The call's relay node: ``node_id`` when none is set or the one set
        is no longer alive (its relay moves here)."""
        call = self._live(call_id)
        if call is None:
            return None
        if call.relay_node is None or (call.relay_node != node_id
                                       and self._relay_nodes.get(call.relay_node, 0) <= self._now()):
            call = replace(call, relay_node=node_id)
            self._calls[call_id] = (call, self._calls[call_id][1])
        return call.relay_node

    async def relay_node_alive(self, node_id: str, *, ttl: float) -> None:
        self._relay_nodes[node_id] = self._now() + ttl

    async def relay_node_gone(self, node_id: str) -> None:
        self._relay_nodes.pop(node_id, None)

    async def mark_away(self, call_id: str, user_id: str, *, deadline: float) -> bool:
        """Start ``user_id``'s grace period in an active call; False when the
        call is not active (or they are already away)."""
        call = self._live(call_id)
        if call is None or call.state != ACTIVE or user_id not in call.participants \
                or user_id in call.away:
            return False
        self._calls[call_id] = (replace(call, away=call.away | {user_id}), self._calls[call_id][1])
        self._away[(call_id, user_id)] = deadline
        return True

    async def clear_away(self, call_id: str, user_id: str) -> bool:
        """End the grace period (they are back); False when they were not away."""
        self._away.pop((call_id, user_id), None)
        call = self._live(call_id)
        if call is None or user_id not in call.away:
            return False
        self._calls[call_id] = (replace(call, away=call.away - {user_id}), self._calls[call_id][1])
        return True

    async def due_away(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        return [key for key, deadline in self._away.items() if deadline <= now][:limit]

    async def release_relay(self, call_id: str, node_id: str) -> None:
        call = self._live(call_id)
        if call is not None and call.relay_node == node_id:
            self._calls[call_id] = (replace(call, relay_node=None), self._calls[call_id][1])

    async def mark_stats(self, call_id: str, user_id: str, result: str = "1") -> bool:
        call = self._live(call_id)
        if call is None or user_id in call.stats_from:
            return False
        ok = call.setup_ok | {user_id} if result == SETUP_OK else call.setup_ok
        self._calls[call_id] = (replace(call, stats_from=call.stats_from | {user_id}, setup_ok=ok),
                                self._calls[call_id][1])
        return True


# KEYS: caller ptr, callee ptr, call hash, ringing zset.
# ARGV: call id, ttl ms, deadline, call prefix, then field/value pairs.
_CREATE = """
local function busy(ptr)
  local cid = redis.call('GET', ptr)
  if not cid then return false end
  local st = redis.call('HGET', ARGV[4] .. cid, 'state')
  return st == 'ringing' or st == 'active'
end
if busy(KEYS[1]) then return 1 end
if busy(KEYS[2]) then return 2 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return 0
"""

# KEYS: call hash, ringing zset, away zset. ARGV: call id, to state, ttl ms, user prefix,
# final (1/0), expected states (comma separated), then field/value pairs.
# -> {changed 0/1, HGETALL} or false when the call does not exist.
_TRANSITION = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
local allowed = false
for s in string.gmatch(ARGV[6], '[^,]+') do
  if s == st then allowed = true end
end
if not allowed then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
for _, role in ipairs({'caller', 'callee'}) do
  local uid = redis.call('HGET', KEYS[1], role)
  if ARGV[5] == '1' then redis.call('ZREM', KEYS[3], ARGV[1] .. ' ' .. uid) end
  local ptr = ARGV[4] .. uid
  if redis.call('GET', ptr) == ARGV[1] then
    if ARGV[5] == '1' then redis.call('DEL', ptr) else redis.call('PEXPIRE', ptr, ARGV[3]) end
  end
end
return {1, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: call hash. ARGV: node, relay node liveness prefix -> the owner, or
# false when the call is gone. An owner whose liveness key expired is replaced.
_CLAIM_RELAY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local owner = redis.call('HGET', KEYS[1], 'relay_node')
if (not owner) or (owner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. owner) == 0) then
  redis.call('HSET', KEYS[1], 'relay_node', ARGV[1])
  return ARGV[1]
end
return owner
"""

# KEYS: call hash, away zset. ARGV: user id, deadline, member -> 1 when marked
_MARK_AWAY = """
if redis.call('HGET', KEYS[1], 'state') ~= 'active' then return 0 end
if redis.call('HSETNX', KEYS[1], 'away:' .. ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: call hash, away zset. ARGV: user id, member -> 1 when they were away
_CLEAR_AWAY = """
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('HDEL', KEYS[1], 'away:' .. ARGV[1])
"""

# KEYS: call hash. ARGV: node
_RELEASE_RELAY = """
if redis.call('HGET', KEYS[1], 'relay_node') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'relay_node')
end
return 0
"""

# KEYS: call hash. ARGV: field, value -> 1 when newly set
_MARK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisCallStore:
    def __init__(self, client: redis.Redis, *, prefix: str = KEY_PREFIX) -> None:
        self._redis = client
        self._call_prefix = f"{prefix}call:"
        self._user_prefix = f"{prefix}user:"
        self._ringing = f"{prefix}ringing"
        self._away = f"{prefix}away"
        self._relay_node_prefix = f"{prefix}relay_node:"
        self._mark_away = client.register_script(_MARK_AWAY)
        self._clear_away = client.register_script(_CLEAR_AWAY)
        self._create = client.register_script(_CREATE)
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM_RELAY)
        self._release = client.register_script(_RELEASE_RELAY)
        self._mark = client.register_script(_MARK)

    def _call(self, call_id: str) -> str:
        return self._call_prefix + call_id

    def _user(self, user_id: str) -> str:
        return self._user_prefix + user_id

    @staticmethod
    def _decode(raw: Any) -> dict[str, str]:
        items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in items}

    async def create(self, call: CallRecord, *, ring_deadline: float, ttl: float) -> str | None:
        args: list[Any] = [call.id, _ms(ttl), ring_deadline, self._call_prefix]
        for k, v in _fields(call).items():
            args.extend((k, v))
        result = await self._create(
            keys=[self._user(call.caller), self._user(call.callee), self._call(call.id), self._ringing],
            args=args,
        )
        return {0: None, 1: CALLER_BUSY, 2: CALLEE_BUSY}[int(result)]

    async def get(self, call_id: str) -> CallRecord | None:
        raw = self._decode(await self._redis.hgetall(self._call(call_id)))
        return _record(call_id, raw) if raw.get("state") else None

    async def current(self, user_id: str) -> str | None:
        raw = await self._redis.get(self._user(user_id))
        if raw is None:
            return None
        call = await self.get(text(raw))
        return call.id if call is not None and call.state in LIVE_STATES else None

    async def transition(
        self, call_id: str, *, expect: tuple[str, ...], to: str, ttl: float,
        accepted_at: float | None = None, ended_at: float | None = None,
        reason: str | None = None, ended_by: str | None = None,
    ) -> tuple[bool, CallRecord | None]:
        args: list[Any] = [call_id, to, _ms(ttl), self._user_prefix,
                           "1" if to in FINAL_STATES else "0", ",".join(expect)]
        if accepted_at is not None:
            args.extend(("accepted_at", repr(accepted_at)))
        if ended_at is not None:
            args.extend(("ended_at", repr(ended_at), "reason", reason or "", "ended_by", ended_by or ""))
        result = await self._transition(keys=[self._call(call_id), self._ringing, self._away],
                                        args=args)
        if not result:
            return False, None
        changed, raw = result
        return bool(changed), _record(call_id, self._decode(raw))

    async def due_ringing(self, now: float, *, limit: int = 100) -> list[str]:
        raw = await self._redis.zrangebyscore(self._ringing, "-inf", now, start=0, num=limit)
        return [text(r) for r in raw]

    async def claim_relay(self, call_id: str, node_id: str) -> str | None:
        owner = await self._claim(keys=[self._call(call_id)], args=[node_id, self._relay_node_prefix])
        return owner.decode() if isinstance(owner, bytes) else owner or None

    async def relay_node_alive(self, node_id: str, *, ttl: float) -> None:
        await self._redis.set(self._relay_node_prefix + node_id, "1", px=_ms(ttl))

    async def relay_node_gone(self, node_id: str) -> None:
        await self._redis.delete(self._relay_node_prefix + node_id)

    async def mark_away(self, call_id: str, user_id: str, *, deadline: float) -> bool:
        return bool(await self._mark_away(keys=[self._call(call_id), self._away],
                                          args=[user_id, repr(deadline), f"{call_id} {user_id}"]))

    async def clear_away(self, call_id: str, user_id: str) -> bool:
        return bool(await self._clear_away(keys=[self._call(call_id), self._away],
                                           args=[user_id, f"{call_id} {user_id}"]))

    async def due_away(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        raw = await self._redis.zrangebyscore(self._away, "-inf", now, start=0, num=limit)
        pairs = [text(r).split(" ", 1) for r in raw]
        return [(p[0], p[1]) for p in pairs if len(p) == 2]

    async def release_relay(self, call_id: str, node_id: str) -> None:
        await self._release(keys=[self._call(call_id)], args=[node_id])

    async def mark_stats(self, call_id: str, user_id: str, result: str = "1") -> bool:
        return bool(await self._mark(keys=[self._call(call_id)], args=[f"stats:{user_id}", result]))

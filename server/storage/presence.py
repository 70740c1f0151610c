"""Presence state: which users have sockets, on which nodes, and their
chosen status. ``MemoryPresenceStore`` for one node; ``RedisPresenceStore``
shares it between nodes.

Redis keyspace (all under ``<prefix>{presence}:``, ``skillshare:{presence}:`` by
default, shortened to ``{presence}:`` below; the hash tag puts every key in one
slot, so the scripts below, which touch users, nodes and heartbeats together,
also run on a Redis Cluster):
- ``{presence}:user:<uid>``  hash: ``n:<node>`` -> sockets of the user on that
  node, ``status`` (online|away|dnd), ``last_seen`` (epoch seconds); kept
  ``OFFLINE_RETENTION_S`` after the user goes offline, then forgotten
- ``{presence}:hb:<node>``   the node's heartbeat, a key with a TTL
- ``{presence}:nodes``       set of nodes that may hold users
- ``{presence}:node:<node>`` set of users with sockets on that node

A user is online while some ``n:<node>`` count is positive and that node's
heartbeat key exists. Every transition runs as one Lua script, so nodes
racing on the same user agree on who reports online/offline. A node whose
heartbeat expired (killed) is swept by whichever node sees it first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis

from ..redis_keys import RedisKeys
from .redis_replies import text

ONLINE = "online"
OFFLINE = "offline"
STATUSES = ("online", "away", "dnd")
KEY_PREFIX = RedisKeys().presence  # with the default key prefix; one hash slot for all
OFFLINE_RETENTION_S = 30 * 86400  # how long an offline user's last_seen is kept

_ONLINE_FN = """
local function online(key, hbp)
  local f = redis.call('HGETALL', key)
  for i = 1, #f, 2 do
    local k = f[i]
    if string.sub(k, 1, 2) == 'n:' and tonumber(f[i + 1]) > 0
       and redis.call('EXISTS', hbp .. string.sub(k, 3)) == 1 then
      return true
    end
  end
  return false
end
"""

# KEYS: user hash, node users set. ARGV: node, hb prefix, uid, now
_CONNECT = _ONLINE_FN + """
redis.call('PERSIST', KEYS[1])
local was = online(KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
if was then return 0 end
redis.call('HSET', KEYS[1], 'status', 'online', 'last_seen', ARGV[4])
return 1
"""

# KEYS: user hash, node users set. ARGV: node, hb prefix, uid, now, retention s
_DISCONNECT = _ONLINE_FN + """
local field = 'n:' .. ARGV[1]
local left = redis.call('HINCRBY', KEYS[1], field, -1)
if left <= 0 then
  redis.call('HDEL', KEYS[1], field)
  redis.call('SREM', KEYS[2], ARGV[3])
end
if online(KEYS[1], ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: node users set, nodes set. ARGV: dead node, hb prefix, user prefix, now, retention s
_SWEEP = _ONLINE_FN + """
if redis.call('EXISTS', ARGV[2] .. ARGV[1]) == 1 then return {} end
local gone = {}
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[3] .. uid
  redis.call('HDEL', key, 'n:' .. ARGV[1])
  if not online(key, ARGV[2]) then
    redis.call('HSET', key, 'last_seen', ARGV[4])
    redis.call('EXPIRE', key, ARGV[5])
    table.insert(gone, uid)
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return gone
"""

# KEYS: node users set, hb key, nodes set.
# ARGV: node, hb prefix, user prefix, now, ttl ms, retention s, then uid/count pairs.
# Makes Redis agree with this node's own sockets (after a Redis restart,
# a missed update, or a pause long enough to be swept).
_REASSERT = _ONLINE_FN + """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[1])
local field = 'n:' .. ARGV[1]
local mine = {}
local came, gone = {}, {}
for i = 7, #ARGV, 2 do mine[ARGV[i]] = ARGV[i + 1] end
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if mine[uid] == nil then
    local key = ARGV[3] .. uid
    redis.call('HDEL', key, field)
    redis.call('SREM', KEYS[1], uid)
    if not online(key, ARGV[2]) then
      redis.call('HSET', key, 'last_seen', ARGV[4])
      redis.call('EXPIRE', key, ARGV[6])
      table.insert(gone, uid)
    end
  end
end
for uid, count in pairs(mine) do
  local key = ARGV[3] .. uid
  redis.call('PERSIST', key)
  local was = online(key, ARGV[2])
  local before = tonumber(redis.call('HGET', key, field) or '0')
  redis.call('HSET', key, field, count)
  redis.call('SADD', KEYS[1], uid)
  if not was and before <= 0 then
    redis.call('HSET', key, 'status', 'online', 'last_seen', ARGV[4])
    table.insert(came, uid)
  elseif not was then
    table.insert(came, uid)
  end
end
return {came, gone}
"""

# KEYS: user hashes. ARGV: hb prefix. -> {online 0/1, status, last_seen} per user
_GET_MANY = _ONLINE_FN + """
local out = {}
for i, key in ipairs(KEYS) do
  local st = redis.call('HMGET', key, 'status', 'last_seen')
  out[i] = {online(key, ARGV[1]) and 1 or 0, st[1] or false, st[2] or false}
end
return out
"""

# KEYS: user hash. ARGV: hb prefix, status -> 1 when online (and set)
_SET_STATUS = _ONLINE_FN + """
if not online(KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class Presence:
    status: str  # online | away | dnd | offline
    last_seen: float | None


@dataclass(frozen=True, slots=True)
class Reasserted:
    came_online: list[str]
    went_offline: list[str]
    was_missing: bool  # our heartbeat had vanished (Redis restart, or we were swept)


class PresenceStore(Protocol):
    """What ``PresenceService`` needs of its store; ``MemoryPresenceStore``
    (one node) and ``RedisPresenceStore`` (shared between nodes) below.
    ``connect``/``disconnect`` say whether the user came online / went
    offline; ``beat`` whether this node's heartbeat was still there."""

    async def connect(self, user_id: str, *, now: float) -> bool: ...
    async def disconnect(self, user_id: str, *, now: float) -> bool: ...
    async def set_status(self, user_id: str, status: str) -> bool: ...
    async def get_many(self, user_ids: list[str]) -> dict[str, Presence]: ...
    async def beat(self) -> bool: ...
    async def reassert(self, local: dict[str, int], *, now: float) -> Reasserted: ...
    async def sweep(self, *, now: float) -> list[str]: ...
    async def remove_node(self) -> None: ...
    async def forget(self, user_id: str) -> None: ...


class MemoryPresenceStore:
    """One node: the counts are this process's sockets."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._status: dict[str, str] = {}
        self._last_seen: dict[str, float] = {}

    async def connect(self, user_id: str, *, now: float) -> bool:
        count = self._counts.get(user_id, 0)
        self._counts[user_id] = count + 1
        if count == 0:
            self._status[user_id] = ONLINE
            self._last_seen[user_id] = now
            return True
        return False

    async def disconnect(self, user_id: str, *, now: float) -> bool:
        count = self._counts.get(user_id, 0) - 1
        if count > 0:
            self._counts[user_id] = count
            return False
        self._counts.pop(user_id, None)
        self._last_seen[user_id] = now
        return True

    async def set_status(self, user_id: str, status: str) -> bool:
        if not self._counts.get(user_id):
            return False
        self._status[user_id] = status
        return True

    async def get_many(self, user_ids: list[str]) -> dict[str, Presence]:
        return {
            uid: Presence(
                self._status.get(uid, ONLINE) if self._counts.get(uid) else OFFLINE,
                self._last_seen.get(uid),
            )
            for uid in user_ids
        }

    async def beat(self) -> bool:
        return True

    async def reassert(self, local: dict[str, int], *, now: float) -> Reasserted:
        return Reasserted([], [], False)

    async def sweep(self, *, now: float) -> list[str]:
        return []

    async def remove_node(self) -> None:
        return None

    async def forget(self, user_id: str) -> None:
        """A purged account: drop its status and last_seen."""
        for table in (self._counts, self._status, self._last_seen):
            table.pop(user_id, None)


class RedisPresenceStore:
    def __init__(self, client: redis.Redis, *, node_id: str, node_ttl: float,
                 prefix: str = KEY_PREFIX) -> None:
        self._redis = client
        self.node_id = node_id
        self._ttl_ms = int(node_ttl * 1000)
        self._hb_prefix = f"{prefix}hb:"
        self._user_prefix = f"{prefix}user:"
        self._nodes = f"{prefix}nodes"
        self._node_prefix = f"{prefix}node:"
        self._connect = client.register_script(_CONNECT)
        self._disconnect = client.register_script(_DISCONNECT)
        self._sweep = client.register_script(_SWEEP)
        self._reassert = client.register_script(_REASSERT)
        self._get_many = client.register_script(_GET_MANY)
        self._set_status = client.register_script(_SET_STATUS)

    def _user(self, user_id: str) -> str:
        return self._user_prefix + user_id

    def _node_users(self, node_id: str) -> str:
        return self._node_prefix + node_id

    async def connect(self, user_id: str, *, now: float) -> bool:
        return bool(await self._connect(
            keys=[self._user(user_id), self._node_users(self.node_id)],
            args=[self.node_id, self._hb_prefix, user_id, now],
        ))

    async def disconnect(self, user_id: str, *, now: float) -> bool:
        return bool(await self._disconnect(
            keys=[self._user(user_id), self._node_users(self.node_id)],
            args=[self.node_id, self._hb_prefix, user_id, now, OFFLINE_RETENTION_S],
        ))

    async def set_status(self, user_id: str, status: str) -> bool:
        return bool(await self._set_status(
            keys=[self._user(user_id)], args=[self._hb_prefix, status]
        ))

    async def get_many(self, user_ids: list[str]) -> dict[str, Presence]:
        if not user_ids:
            return {}
        rows = await self._get_many(keys=[self._user(u) for u in user_ids],
                                    args=[self._hb_prefix])
        out = {}
        for uid, (online, status, last_seen) in zip(user_ids, rows, strict=True):
            seen = float(last_seen) if last_seen else None
            if online:
                out[uid] = Presence((status or b"online").decode(), seen)
            else:
                out[uid] = Presence(OFFLINE, seen)
        return out

    async def beat(self) -> bool:
        """Refresh our heartbeat; False when it had vanished (then call
        ``reassert``)."""
        return bool(await self._redis.set(
            self._hb_prefix + self.node_id, "1", px=self._ttl_ms, xx=True
        ))

    async def reassert(self, local: dict[str, int], *, now: float) -> Reasserted:
        """Refresh our heartbeat and make Redis hold exactly our sockets."""
        hb = self._hb_prefix + self.node_id
        existed = await self._redis.exists(hb)
        args: list[Any] = [self.node_id, self._hb_prefix, self._user_prefix, now, self._ttl_ms,
                           OFFLINE_RETENTION_S]
        for uid, count in local.items():
            args.extend((uid, count))
        came, gone = await self._reassert(
            keys=[self._node_users(self.node_id), hb, self._nodes], args=args
        )
        return Reasserted([u.decode() for u in came], [u.decode() for u in gone], not existed)

    async def sweep(self, *, now: float) -> list[str]:
        """Take the users of every node whose heartbeat expired offline;
        returns the users that went offline."""
        gone: list[str] = []
        for raw in await self._redis.smembers(self._nodes):
            node = text(raw)
            if node == self.node_id or await self._redis.exists(self._hb_prefix + node):
                continue
            users = await self._sweep(
                keys=[self._node_users(node), self._nodes],
                args=[node, self._hb_prefix, self._user_prefix, now, OFFLINE_RETENTION_S],
            )
            gone.extend(u.decode() for u in users)
        return gone

    async def remove_node(self) -> None:
        """Clean shutdown: drop our heartbeat so peers sweep us at once."""
        await self._redis.delete(self._hb_prefix + self.node_id)

    async def forget(self, user_id: str) -> None:
        """A purged account: drop its hash (status, last_seen); it has no
        sockets left, so no node set names it for long."""
        await self._redis.delete(self._user(user_id))

// A Node.js Socket.IO 4 reference server doing the same work as our node's
// `message:send`, speaking the same protocol (docs/realtime.md), so one load
// generator drives both. Started by run.py; not part of the product.
//
//   node ref-server.mjs --port 8000 --secret S --rooms rooms.json
//        [--mongo mongodb://127.0.0.1:27017/ --db fanout | --no-db]
//        [--redis redis://127.0.0.1:6379/0]
//
// Same work as ours:
// - connect: `auth.token` checked (here an HMAC token, `<user_id>.<mac>`, the
//   reference's own simple scheme), the socket joins `user:<id>`; refused
//   with `connect_error` data {code: "unauthorized"} otherwise.
// - `room:join` {room_id}: membership check, ack {ok, room, last_seq}.
// - `message:send` {room_id, client_id, body}: validated (UUID client_id, body
//   1-4000 chars after trimming), membership check; sends to one room go one at
//   a time (per-room seq, no gaps); the next seq comes from the per-room cache;
//   the message is inserted (`_id` "<room>:<seq, 10 digits>", unique
//   (sender_id, client_id) index: a duplicate client_id acks the stored message
//   without a broadcast; a taken seq, from another node, retries at the next
//   one); then `message` goes to every socket of every member (`user:<id>`
//   rooms, the sender's too) and the ack carries the stored message.
// - Rooms and members come from --rooms (a JSON object {room_id: {type,
//   member_ids}}): ours serves them from its per-node room cache, so the steady
//   state is the same (a cache hit).
// - With --redis, @socket.io/redis-adapter fans out across nodes, as our
//   AsyncRedisManager does. Per-message compression is off (socket.io's default).

import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

import { Server } from "socket.io";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "8000" },
    secret: { type: "string" },
    rooms: { type: "string" },
    mongo: { type: "string" },
    db: { type: "string", default: "fanout" },
    "no-db": { type: "boolean", default: false },
    redis: { type: "string" },
  },
});
if (!opts.secret || !opts.rooms) {
  console.error("usage: node ref-server.mjs --port P --secret S --rooms FILE [--mongo URL | --no-db] [--redis URL]");
  process.exit(2);
}
if (!opts["no-db"] && !opts.mongo) {
  console.error("--mongo URL is required unless --no-db");
  process.exit(2);
}

const MAX_BODY_CHARS = 4000;
const MAX_SEND_ATTEMPTS = 64;
const REFRESH_AFTER_CLASHES = 3;
const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const rooms = new Map();
for (const [id, room] of Object.entries(JSON.parse(readFileSync(opts.rooms, "utf8")))) {
  rooms.set(id, {
    id, type: room.type, memberIds: room.member_ids, members: new Set(room.member_ids),
    userRooms: room.member_ids.map((m) => `user:${m}`), seq: null, tail: Promise.resolve(),
  });
}

let messages = null;
if (!opts["no-db"]) {
  const { MongoClient } = await import("mongodb");
  const client = new MongoClient(opts.mongo, { maxPoolSize: 100 });
  await client.connect();
  messages = client.db(opts.db).collection("messages");
  await messages.createIndex({ room_id: 1, seq: 1 }, { name: "room_seq" });
  await messages.createIndex({ sender_id: 1, client_id: 1 }, { unique: true, name: "sender_client_unique" });
}

export function sign(secret, userId) {
  return createHmac("sha256", secret).update(userId).digest("base64url");
}

function userOf(token) {
  if (typeof token !== "string" || token.length > 512) return null;
  const dot = token.lastIndexOf(".");
  if (dot <= 0) return null;
  const userId = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1));
  const want = Buffer.from(sign(opts.secret, userId));
  return given.length === want.length && timingSafeEqual(given, want) ? userId : null;
}

const refuse = (code, message) => ({ ok: false, error: { code, message } });
const messageId = (roomId, seq) => `${roomId}:${String(seq).padStart(10, "0")}`;
const publicMessage = (doc) => ({
  id: doc._id, room_id: doc.room_id, seq: doc.seq, sender_id: doc.sender_id, body: doc.body,
  client_id: doc.client_id, created_at: doc.created_at.toISOString(), deleted: false,
});

const http = createServer();
const io = new Server(http, { serveClient: false, maxHttpBufferSize: 64 * 1024 });

if (opts.redis) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: opts.redis });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.use((socket, next) => {
  const userId = userOf(socket.handshake.auth?.token);
  if (userId === null) {
    const err = new Error("unauthorized");
    err.data = { code: "unauthorized", message: "The access token is not valid." };
    return next(err);
  }
  socket.data.userId = userId;
  next();
});

function memberRoom(payload, userId) {
  const room = rooms.get(payload?.room_id);
  if (room === undefined) return [null, refuse("not_found", "No such room.")];
  if (!room.members.has(userId)) return [null, refuse("forbidden", "You are not a member of this room.")];
  return [room, null];
}

async function lastSeq(room) {
  if (room.seq === null) {
    const top = messages && (await messages.find({ room_id: room.id }).sort({ seq: -1 }).limit(1).toArray());
    room.seq = top && top.length ? top[0].seq : 0;
  }
  return room.seq;
}

async function sendLocked(room, userId, clientId, body) {
  let seq = (await lastSeq(room)) + 1;
  let clashes = 0;
  for (let attempt = 0; attempt < MAX_SEND_ATTEMPTS; attempt++) {
    const doc = {
      _id: messageId(room.id, seq), room_id: room.id, seq, sender_id: userId,
      client_id: clientId, body, created_at: new Date(),
    };
    try {
      if (messages) await messages.insertOne(doc);
    } catch (err) {
      if (err?.code !== 11000) throw err;
      if (JSON.stringify(err.keyPattern ?? err.errmsg ?? "").includes("client_id")) {
        const earlier = await messages.findOne({ sender_id: userId, client_id: clientId });
        return { message: publicMessage(earlier), duplicate: true };
      }
      room.seq = Math.max(room.seq, seq);
      clashes += 1;
      if (clashes % REFRESH_AFTER_CLASHES === 0) room.seq = null;
      seq = (room.seq === null ? await lastSeq(room) : seq) + 1;
      continue;
    }
    room.seq = Math.max(room.seq ?? 0, seq);
    const message = publicMessage(doc);
    io.to(room.userRooms).emit("message", message);
    return { message, duplicate: false };
  }
  throw Object.assign(new Error("busy"), { apiCode: "unavailable" });
}

io.on("connection", (socket) => {
  const userId = socket.data.userId;
  socket.join(`user:${userId}`);

  socket.on("room:join", async (payload, ack) => {
    if (typeof ack !== "function") return;
    const [room, error] = memberRoom(payload, userId);
    if (error) return ack(error);
    ack({ ok: true, room: { id: room.id, type: room.type, member_ids: room.memberIds }, last_seq: await lastSeq(room) });
  });

  socket.on("message:send", (payload, ack) => {
    if (typeof ack !== "function") return;
    const [room, error] = memberRoom(payload, userId);
    if (error) return ack(error);
    const body = typeof payload.body === "string" ? payload.body.trim() : "";
    if (!body || [...body].length > MAX_BODY_CHARS) {
      return ack(refuse("validation_error", "The message must be 1-4000 characters."));
    }
    if (typeof payload.client_id !== "string" || !UUID_RE.test(payload.client_id)) {
      return ack(refuse("validation_error", "client_id must be a UUID."));
    }
    const clientId = payload.client_id.toLowerCase();
    const run = room.tail.then(() => sendLocked(room, userId, clientId, body));
    room.tail = run.catch(() => undefined);
    run.then(
      ({ message, duplicate }) => ack({ ok: true, message, duplicate }),
      (err) => {
        console.error("message:send failed", err);
        ack(refuse(err.apiCode ?? "internal_error", "The message was not stored."));
      },
    );
  });
});

http.listen(Number(opts.port), "127.0.0.1", () => console.log(`listening ${opts.port}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));

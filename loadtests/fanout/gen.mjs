// Open-loop chat load generator (the official socket.io-client), driven by
// run.py; works against our node and the Node.js reference alike.
//
//   node gen.mjs CONFIG.json
//
// CONFIG: {clients: [{url, token, user_id, room_id, send?}], rate (msg/s per client),
//          warmup, duration, drain (s), connect_concurrency, inflight}
// A client with `send: false` only listens (an idle member).
//
// With `inflight` (sends per client), the load is closed loop instead: every
// sending client keeps that many sends outstanding, sending the next as an ack
// arrives (`rate` is then ignored): the server's capacity at a fixed
// concurrency, where ack latency follows from throughput.
//
// Every client sends `message:send` at `rate` on a fixed schedule whatever
// the acks do (open loop); the schedule spreads the clients' phases evenly
// over one period, in a shuffled order so a room's senders are not bunched.
// Each body carries its send time, so latency is measured from the moment the
// message was sent: ack latency at the sender, delivery latency at every
// other member (a `message` from oneself — the echo to the sender's socket —
// is not a delivery). Only sends inside the measuring window count; the
// deliveries rate counts deliveries received inside it.
//
// Stdout: `READY`, `MEASURE_START`, `MEASURE_END` (run.py reads the servers'
// CPU at those two), then `RESULT {json}`. Exit 1 with a line on stderr when
// a client cannot connect or join.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

import { io } from "socket.io-client";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { clients, rate, warmup, duration } = config;
const drain = config.drain ?? 10;
const concurrency = config.connect_concurrency ?? 50;
const PAD = "x".repeat(60);

const nowMs = () => performance.timeOrigin + performance.now();

const roomSize = new Map();
for (const c of clients) roomSize.set(c.room_id, (roomSize.get(c.room_id) ?? 0) + 1);

let windowFrom = Infinity;
let windowTo = Infinity;
let measuring = false;
const stats = {
  sent: 0, acked: 0, failed: 0, failed_codes: {}, expected_deliveries: 0,
  deliveries: 0, deliveries_in_window: 0, duplicate_deliveries: 0,
  acks_in_window: 0, // ok acks received inside the window, whenever sent: durable msgs/s
};
const ackLatency = [];
const deliveryLatency = [];
const outstanding = new Set();

function inWindow(t) {
  return t >= windowFrom && t < windowTo;
}

async function connect(c) {
  const socket = io(c.url, {
    auth: { token: c.token }, transports: ["websocket"], reconnection: false, timeout: 60_000,
  });
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`connect ${c.user_id}: ${err.message}`)));
  });
  socket.on("message", (m) => {
    if (m.sender_id === c.user_id) return; // the echo to the sender
    const sentAt = Number(m.body.slice(6, m.body.indexOf(" ", 6)));
    const at = nowMs();
    if (measuring) stats.deliveries_in_window += 1;
    if (inWindow(sentAt)) {
      stats.deliveries += 1;
      deliveryLatency.push(at - sentAt);
    }
  });
  socket.on("disconnect", (reason) => {
    if (!finished) console.error(`client ${c.user_id} disconnected: ${reason}`);
  });
  const joined = await socket.timeout(60_000).emitWithAck("room:join", { room_id: c.room_id });
  if (!joined.ok) throw new Error(`room:join ${c.user_id}: ${JSON.stringify(joined.error)}`);
  return { ...c, socket };
}

let finished = false;
const sockets = [];
for (let i = 0; i < clients.length; i += concurrency) {
  try {
    sockets.push(...(await Promise.all(clients.slice(i, i + concurrency).map(connect))));
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
}
console.log("READY");

const sendLag = [];

function send(c, scheduledAt, onAck) {
  const sentAt = nowMs();
  if (inWindow(sentAt)) sendLag.push(sentAt - scheduledAt);
  const counted = inWindow(sentAt);
  const token = {};
  if (counted) {
    stats.sent += 1;
    outstanding.add(token);
  }
  c.socket.emit(
    "message:send",
    { room_id: c.room_id, client_id: randomUUID(), body: `bench ${sentAt.toFixed(3)} ${PAD}` },
    (ack) => {
      if (measuring && ack?.ok) stats.acks_in_window += 1;
      if (onAck) onAck();
      if (!counted) return;
      outstanding.delete(token);
      if (ack?.ok) {
        stats.acked += 1;
        stats.expected_deliveries += roomSize.get(c.room_id) - 1;
        ackLatency.push(nowMs() - sentAt);
      } else {
        stats.failed += 1;
        const code = ack?.error?.code ?? "no_ack_body";
        stats.failed_codes[code] = (stats.failed_codes[code] ?? 0) + 1;
      }
    },
  );
}

// A deterministic shuffle of the send order (so runs are comparable).
const order = sockets.map((_, i) => i).filter((i) => sockets[i].send !== false);
let seed = 12345;
for (let i = order.length - 1; i > 0; i--) {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  const j = seed % (i + 1);
  [order[i], order[j]] = [order[j], order[i]];
}

const step = 1000 / rate / order.length; // ms between two sends, all sending clients
const t0 = nowMs() + 200;
windowFrom = t0 + warmup * 1000;
windowTo = windowFrom + duration * 1000;
const cpu0 = process.cpuUsage();
let next = 0;

const closedLoop = (config.inflight ?? 0) > 0;
if (closedLoop) {
  await new Promise((r) => setTimeout(r, Math.max(0, t0 - nowMs())));
  const loop = (c) => {
    const now = nowMs();
    if (now < windowTo) send(c, now, () => loop(c));
  };
  for (let k = 0; k < config.inflight; k++) for (const i of order) loop(sockets[i]);
}

await new Promise((resolve) => {
  const tick = () => {
    const now = nowMs();
    if (!measuring && now >= windowFrom && now < windowTo) {
      measuring = true;
      console.log("MEASURE_START");
    }
    if (measuring && now >= windowTo) {
      measuring = false;
      console.log("MEASURE_END");
    }
    const due = Math.min(Math.floor((now - t0) / step), Math.floor((windowTo - t0) / step));
    while (!closedLoop && next <= due) {
      send(sockets[order[next % order.length]], t0 + next * step);
      next += 1;
    }
    if (now >= windowTo) return resolve();
    setTimeout(tick, 1);
  };
  setTimeout(tick, Math.max(0, t0 - nowMs()));
});

const drainUntil = nowMs() + drain * 1000;
while (nowMs() < drainUntil && (outstanding.size > 0 || stats.deliveries < stats.expected_deliveries)) {
  await new Promise((r) => setTimeout(r, 50));
}
finished = true;
const cpu = process.cpuUsage(cpu0);

function pct(values, q) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 100) / 100;
}

const result = {
  clients: sockets.length, rooms: roomSize.size, rate, warmup, duration,
  ...stats,
  missing_acks: outstanding.size,
  deliveries_per_s: Math.round((stats.deliveries_in_window / duration) * 10) / 10,
  acks_per_s: Math.round((stats.acked / duration) * 10) / 10,
  durable_per_s: Math.round((stats.acks_in_window / duration) * 10) / 10,
  ack_ms: { p50: pct(ackLatency, 0.5), p99: pct(ackLatency, 0.99), p999: pct(ackLatency, 0.999) },
  delivery_ms: { p50: pct(deliveryLatency, 0.5), p99: pct(deliveryLatency, 0.99), p999: pct(deliveryLatency, 0.999) },
  // How far behind its schedule the generator sent (its own core was busy):
  // large values mean the offered load was lower than asked.
  send_lag_ms: { p50: pct(sendLag, 0.5), p99: pct(sendLag, 0.99) },
  generator_cpu_s: (cpu.user + cpu.system) / 1e6,
};
console.log(`RESULT ${JSON.stringify(result)}`);
for (const c of sockets) c.socket.disconnect();
process.exit(0);

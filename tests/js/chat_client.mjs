// One chat round trip with the official socket.io-client:
//   node chat_client.mjs <url> <token> <room_id>
// Prints one JSON line: the refusal of a bad token, the join ack, the send
// ack and the `message` event the sender's own socket received.
import { io } from "socket.io-client";
import { randomUUID } from "node:crypto";

const [url, token, roomId] = process.argv.slice(2);
const result = {};
const timeout = setTimeout(() => { console.log(JSON.stringify({ ...result, error: "timeout" })); process.exit(2); }, 15000);

function refusal() {
  return new Promise((resolve) => {
    const bad = io(url, { auth: { token: "not-a-token" }, transports: ["websocket"], reconnection: false });
    bad.on("connect_error", (err) => { bad.close(); resolve({ message: err.message, code: err.data && err.data.code }); });
    bad.on("connect", () => { bad.close(); resolve({ connected: true }); });
  });
}

result.refused = await refusal();
const socket = io(url, { auth: { token }, transports: ["websocket"], reconnection: false });
const received = new Promise((resolve) => socket.on("message", resolve));
await new Promise((resolve, reject) => { socket.on("connect", resolve); socket.on("connect_error", reject); });
result.join = await socket.timeout(5000).emitWithAck("room:join", { room_id: roomId });
result.send = await socket.timeout(5000).emitWithAck("message:send", { room_id: roomId, client_id: randomUUID(), body: "hello from socket.io-client" });
result.received = await received;
result.unknown = await socket.timeout(5000).emitWithAck("no:such:event", {});
socket.close();
clearTimeout(timeout);
console.log(JSON.stringify(result));

// A room member with the official socket.io-client:
//   node fanout_receiver.mjs <url> <token> <expected> <websocket|upgrade>
// Prints "ready" once connected ("upgrade": still polling), then one JSON line: the bodies of the
// first <expected> `message` events, in the order they arrived (waits a
// little longer to catch duplicates).
import { io } from "socket.io-client";

const [url, token, expected, mode] = process.argv.slice(2);
const transports = mode === "websocket" ? ["websocket"] : ["polling", "websocket"];
const bodies = [];
const timeout = setTimeout(() => { console.log(JSON.stringify({ bodies, error: "timeout" })); process.exit(2); }, 60000);
const socket = io(url, { auth: { token }, transports, reconnection: false });
socket.on("message", (m) => {
  bodies.push(m.body);
  if (bodies.length === Number(expected)) {
    setTimeout(() => {
      socket.close();
      clearTimeout(timeout);
      console.log(JSON.stringify({ bodies }));
    }, 500);
  }
});
// "upgrade": ready while still polling, so events also arrive mid-upgrade
socket.on("connect", () => console.log("ready"));
socket.on("connect_error", (err) => { console.log(JSON.stringify({ error: err.message })); process.exit(3); });

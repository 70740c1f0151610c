// The JS SDK riding a rolling deploy:
//   node drain_sdk_client.mjs <balancer url> <email> <password> <room_id> <count>
// Signs in, connects, joins the room, then sends <count> messages one after
// another (the SDK retries each until acknowledged). Prints one JSON line per
// acknowledged message ({acked: {id, seq}}) as it goes, so the test can SIGTERM
// a node mid-stream, then one summary line {done, states}.
import { SkillShareClient } from '../../clients/js-sdk/src/index.js';

const [url, email, password, roomId, count] = process.argv.slice(2);
const timeout = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(2); }, 90_000);
const client = new SkillShareClient({ baseUrl: url, sendRetryDelayMs: 100, ackTimeoutMs: 5000 });
const states = [];
client.realtime.on('state', (e) => states.push({ state: e.state, reason: e.reason ?? null }));
await client.auth.login({ email, password });
await client.connect();
await client.chat.join(roomId);
for (let i = 0; i < Number(count); i += 1) {
  const message = await client.chat.send(roomId, `sdk message ${i}`);
  console.log(JSON.stringify({ acked: { id: message.id, seq: message.seq } }));
  await new Promise((r) => setTimeout(r, 50));
}
console.log(JSON.stringify({ done: true, states }));
client.close();
clearTimeout(timeout);
process.exit(0);

// Reads an SSE stream with a real EventSource implementation (npm `eventsource`, WHATWG
// semantics) and prints each event as one JSON line: {type, id, data}. Exits after N events.
// Usage: node tests/e2e/sse-client.mjs URL N
import { EventSource } from 'eventsource';

const [url, count] = process.argv.slice(2);
const want = Number(count);
const es = new EventSource(url);
let seen = 0;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
for (const type of ['snapshot', 'prices', 'status', 'warning']) {
  es.addEventListener(type, (e) => {
    out({ type, id: e.lastEventId, data: JSON.parse(e.data) });
    if (++seen >= want) {
      es.close();
      process.exit(0);
    }
  });
}
es.onerror = (e) => out({ type: 'error', message: String(e?.message ?? e) });
setTimeout(() => {
  out({ type: 'timeout' });
  process.exit(2);
}, 15000);

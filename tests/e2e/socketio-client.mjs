// The official socket.io-client (npm, pinned) against edgetick, printing what it gets as
// JSON lines: {ev, data}. Modes:
//   node tests/e2e/socketio-client.mjs BASE prices SYMBOL   join /prices, subscribe SYMBOL with
//       an ack, then an unknown symbol without one (NestJS's `exception` comes back)
//   node tests/e2e/socketio-client.mjs BASE root            join / (Flask-SocketIO's broadcast)
//   node tests/e2e/socketio-client.mjs BASE nsp NAME        join NAME (a refusal is printed)
//   node tests/e2e/socketio-client.mjs BASE auth TOKEN      join /prices with {auth: {token}}
//   node tests/e2e/socketio-client.mjs BASE query TOKEN     join /prices with ?token=
//   node tests/e2e/socketio-client.mjs BASE resubscribe SYMBOL  the seed's page: reconnect by
//       itself (the client's defaults) and subscribe SYMBOL on every connect
// It runs until its stdin closes (the test ends it) or for 30 s (120 s when reconnecting).
import { io } from 'socket.io-client';

const [base, mode, arg] = process.argv.slice(2);
const out = (ev, data) => process.stdout.write(JSON.stringify({ ev, data: data ?? null }) + '\n');
const nsp = { prices: '/prices', root: '/', auth: '/prices', query: '/prices', resubscribe: '/prices' }[mode] ?? arg;
const reconnection = mode === 'resubscribe';
const options = { transports: ['websocket'], reconnection, timeout: 10_000 };
if (mode === 'auth' && arg) options.auth = { token: arg };
if (mode === 'query' && arg) options.query = { token: arg };
const socket = io(base + nsp, options);

socket.on('connect', () => {
  out('connect', { transport: socket.io.engine.transport.name });
  if (mode === 'resubscribe') socket.emit('subscribe', { symbol: arg }, (ack) => out('ack', ack));
  if (mode !== 'prices') return;
  socket.emit('subscribe', { symbol: arg }, (ack) => {
    out('ack', ack);
    socket.emit('subscribe', { symbol: 'NOTASYMBOL1' });
  });
});
for (const ev of ['priceUpdate', 'price_update', 'exception', 'connected']) {
  socket.on(ev, (data) => out(ev, data));
}
socket.on('connect_error', (e) => out('connect_error', { message: e.message }));
socket.on('disconnect', (reason) => out('disconnect', { reason }));

const end = () => {
  socket.close();
  process.exit(0);
};
process.stdin.on('end', end);
process.stdin.resume();
setTimeout(end, reconnection ? 120_000 : 30_000);

// The official socket.io-client (npm, pinned) against edgetick, printing what it gets as
// JSON lines: {ev, data, ms} (ms since io()). With default options, as the seeds' pages use
// it (long-polling first, printed as `open`, then the upgrade, printed as `upgrade`, which
// may come before or after `connect`: the two race, as with any server); a last argument
// `websocket` opens the WebSocket directly (`transports: ['websocket']`). Modes:
//   node tests/e2e/socketio-client.mjs BASE prices SYMBOL   join /prices, subscribe SYMBOL with
//       an ack, then an unknown symbol without one (NestJS's `exception` comes back)
//   node tests/e2e/socketio-client.mjs BASE unsubscribe A,B join /prices, subscribe A; at its
//       first priceUpdate unsubscribe (printed `unsubscribed`), then subscribe B
//   node tests/e2e/socketio-client.mjs BASE root            join / (Flask-SocketIO's broadcast)
//   node tests/e2e/socketio-client.mjs BASE nsp NAME        join NAME (a refusal is printed)
//   node tests/e2e/socketio-client.mjs BASE auth TOKEN      join /prices with {auth: {token}}
//   node tests/e2e/socketio-client.mjs BASE query TOKEN     join /prices with ?token=
//   node tests/e2e/socketio-client.mjs BASE resubscribe SYMBOL  the seed's page: reconnect by
//       itself (the client's defaults) and subscribe SYMBOL on every connect
//   node tests/e2e/socketio-client.mjs BASE channel NAME    join /prices, subscribe {channel: NAME}
//       with an ack (market channels' frames come as events named by their type)
// It runs until its stdin closes (the test ends it) or for 30 s (120 s when reconnecting).
import { io } from 'socket.io-client';

const [base, mode, arg, transport] = process.argv.slice(2);
const started = performance.now();
const out = (ev, data) => {
  const ms = Math.round(performance.now() - started);
  process.stdout.write(JSON.stringify({ ev, data: data ?? null, ms }) + '\n');
};
const nsp = { prices: '/prices', unsubscribe: '/prices', root: '/', auth: '/prices', query: '/prices', resubscribe: '/prices', channel: '/prices' }[mode] ?? arg;
const reconnection = mode === 'resubscribe';
const options = { reconnection, timeout: 10_000 };
if (transport === 'websocket') options.transports = ['websocket'];
if (mode === 'auth' && arg) options.auth = { token: arg };
if (mode === 'query' && arg) options.query = { token: arg };
const socket = io(base + nsp, options);
socket.io.on('open', () => {
  out('open', { transport: socket.io.engine.transport.name });
  socket.io.engine.on('upgrade', (t) => out('upgrade', { transport: t.name }));
});

socket.on('connect', () => {
  out('connect', { transport: socket.io.engine.transport.name });
  if (mode === 'resubscribe') socket.emit('subscribe', { symbol: arg }, (ack) => out('ack', ack));
  if (mode === 'unsubscribe') unsubscribeOnce(...arg.split(','));
  if (mode === 'channel') socket.emit('subscribe', { channel: arg }, (ack) => out('ack', ack));
  if (mode !== 'prices') return;
  socket.emit('subscribe', { symbol: arg }, (ack) => {
    out('ack', ack);
    socket.emit('subscribe', { symbol: 'NOTASYMBOL1' });
  });
});
function unsubscribeOnce(first, then) {
  socket.emit('subscribe', { symbol: first }, (ack) => out('ack', ack));
  const leave = (update) => {
    if (update.symbol !== first) return;
    socket.off('priceUpdate', leave);
    socket.emit('unsubscribe', { symbol: first }, (ack) => {
      out('unsubscribed', ack);
      socket.emit('subscribe', { symbol: then }, (again) => out('ack', again));
    });
  };
  socket.on('priceUpdate', leave);
}
for (const ev of ['priceUpdate', 'price_update', 'exception', 'connected', 'heatmap']) {
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

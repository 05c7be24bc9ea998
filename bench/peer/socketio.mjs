// The Node Socket.IO peer of `make bench`: the NestJS seed's gateway as a team would run it on
// one Node process, for the `:sio` loads to put edgetick's Socket.IO beside. It holds one
// upstream WebSocket to the exchange (every symbol's ticker), and on every ticker emits
// `priceUpdate` `{symbol, price, ts}` to the symbol's room of namespace `/prices`, which the
// clients join with `subscribe` `{symbol}` (and leave with `unsubscribe`). socket.io's
// broadcast encodes a packet once per emit, so this is the stock server at its best: no
// conflation, no limits, no storage. `GET /health` answers `{"upstream":{"state"}}` so the
// benchmark waits on it as on the Workers.
//
//   node bench/peer/socketio.mjs --port 8790 --upstream ws://127.0.0.1:9443/stream --symbols BTCUSDT,ETHUSDT

import { createServer } from "node:http";
import { Server } from "socket.io";
import WebSocket from "ws";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const port = Number(arg("port", "8790"));
const upstreamUrl = arg("upstream", "ws://127.0.0.1:9443/stream");
const symbols = arg("symbols", "BTCUSDT").split(",").filter(Boolean);
let upstreamState = "reconnecting";

const http = createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ upstream: { state: upstreamState } }));
    return;
  }
  res.writeHead(404).end("not found");
});
const io = new Server(http, { cors: { origin: "*" } });
const prices = io.of("/prices");
const known = new Set(symbols);

prices.on("connection", (socket) => {
  socket.on("subscribe", (msg, ack) => {
    const symbol = msg && typeof msg.symbol === "string" ? msg.symbol.toUpperCase() : "";
    if (!known.has(symbol)) {
      const error = { status: "error", message: `unknown symbol ${symbol}` };
      return typeof ack === "function" ? ack(error) : socket.emit("exception", error);
    }
    socket.join(symbol);
    if (typeof ack === "function") ack({ ok: true, symbol });
  });
  socket.on("unsubscribe", (msg, ack) => {
    const symbol = msg && typeof msg.symbol === "string" ? msg.symbol.toUpperCase() : "";
    socket.leave(symbol);
    if (typeof ack === "function") ack({ ok: true, symbol });
  });
});

/** Holds the exchange connection, reconnecting a second after it drops. */
function connect() {
  const streams = symbols.map((s) => `${s.toLowerCase()}@ticker`).join("/");
  const ws = new WebSocket(`${upstreamUrl}?streams=${streams}`);
  ws.on("open", () => (upstreamState = "connected"));
  ws.on("message", (data) => {
    let frame;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      return;
    }
    const d = frame.data;
    if (!d || d.e !== "24hrTicker") return;
    prices.to(d.s).emit("priceUpdate", { symbol: d.s, price: d.c, ts: d.E });
  });
  ws.on("close", () => {
    upstreamState = "reconnecting";
    setTimeout(connect, 1000);
  });
  ws.on("error", () => {});
}

http.listen(port, "127.0.0.1", connect);
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));

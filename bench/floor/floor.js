// The platform floor: the least a relay on a Durable Object can do, for `make bench` to
// measure edgetick against. One object holds the upstream WebSocket to the exchange and the
// clients' hibernatable sockets, keeps the latest price per symbol with a `seq`, and on every
// upstream ticker frame sends one pre-encoded `prices` frame (the same Price fields edgetick
// sends) to each subscriber at once: no flush window, no flow control, no limits, no storage. It speaks just enough of edgetick's
// protocol (subscribe, snapshot, prices, ping) for the same load generator to drive it.

export default {
  async fetch(request, env) {
    const stub = env.FLOOR.get(env.FLOOR.idFromName("leader"));
    return stub.fetch(request);
  },
};

export class Floor {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
    this.seq = 0;
    this.latest = new Map(); // symbol -> encoded price
    this.bySymbol = new Map(); // symbol -> Set of sockets
    this.upstream = null;
    for (const ws of ctx.getWebSockets()) this.track(ws, ws.deserializeAttachment() || []);
  }

  track(ws, symbols) {
    for (const s of symbols) {
      if (!this.bySymbol.has(s)) this.bySymbol.set(s, new Set());
      this.bySymbol.get(s).add(ws);
    }
  }

  async connect() {
    if (this.upstream) return;
    this.upstream = "connecting";
    const streams = this.env.SYMBOLS.split(",")
      .flatMap((s) => [`${s.toLowerCase()}@ticker`, `${s.toLowerCase()}@bookTicker`])
      .join("/");
    const url = this.env.UPSTREAM_URL.replace(/^ws/, "http") + `?streams=${streams}`;
    try {
      const resp = await fetch(url, { headers: { Upgrade: "websocket" } });
      const ws = resp.webSocket;
      if (!ws) throw new Error(`upgrade refused: ${resp.status}`);
      ws.accept();
      ws.addEventListener("message", (e) => this.onUpstream(e.data));
      ws.addEventListener("close", () => (this.upstream = null));
      this.upstream = ws;
    } catch (e) {
      this.upstream = null;
    }
  }

  onUpstream(text) {
    const frame = JSON.parse(text);
    const d = frame.data;
    if (!d || d.e !== "24hrTicker") return;
    // The same Price fields edgetick sends, so both relays move the same bytes.
    const price = JSON.stringify({
      symbol: d.s, price: d.c, open: d.o, high: d.h, low: d.l, volume: d.v,
      quote_volume: d.q, change_pct: d.P, bid: d.b, ask: d.a, event_time: d.E,
      received_at: Date.now(), seq: ++this.seq,
    });
    this.latest.set(d.s, price);
    const subs = this.bySymbol.get(d.s);
    if (!subs) return;
    const out = `{"type":"prices","prices":[${price}]}`;
    for (const ws of subs) {
      try {
        ws.send(out);
      } catch (e) {
        subs.delete(ws);
      }
    }
  }

  async fetch(request) {
    await this.connect();
    const url = new URL(request.url);
    if (url.pathname === "/health") {
      const state = this.upstream && this.upstream !== "connecting" ? "connected" : "reconnecting";
      return Response.json({ upstream: { state }, clients: this.ctx.getWebSockets().length });
    }
    if (url.pathname !== "/ws") return new Response("not found", { status: 404 });
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    pair[1].serializeAttachment([]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  async webSocketMessage(ws, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (msg.action === "subscribe" && Array.isArray(msg.symbols)) {
      const held = new Set([...(ws.deserializeAttachment() || []), ...msg.symbols]);
      ws.serializeAttachment([...held]);
      this.track(ws, msg.symbols);
      ws.send(JSON.stringify({ type: "subscribed", symbols: msg.symbols, id: msg.id }));
      const prices = msg.symbols.map((s) => this.latest.get(s)).filter(Boolean);
      ws.send(`{"type":"snapshot","prices":[${prices.join(",")}]}`);
    } else if (msg.action === "ping") {
      ws.send(JSON.stringify({ type: "pong", id: msg.id, ts: Date.now() }));
    }
  }

  webSocketClose(ws, code, reason) {
    for (const subs of this.bySymbol.values()) subs.delete(ws);
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  webSocketError(ws) {
    for (const subs of this.bySymbol.values()) subs.delete(ws);
  }
}

//! Fan-out shards end to end: the same protocol through `FANOUT_SHARDS=4`, clients spread
//! over the shards, `/health` adding the shards' clients up, and the faults of the tree
//! (a broken link, a restarted leader, restarted shards) injected with `TEST_FAULTS=on`.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;
use crate::*;

/// A service with four fan-out shards, and its own exchange.
struct Tree {
    ex: Exchange,
    svc: Service,
}

fn tree() -> Tree {
    let ex = Exchange::start(&["--rate", "40"]);
    let svc = Service::start(
        "shards",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            ("FANOUT_SHARDS", "4"),
            ("TEST_FAULTS", "on"),
        ],
    );
    wait_connected(&svc);
    Tree { ex, svc }
}

/// Shards with clients in `/health`, once every shard has reported `total` clients.
fn spread(svc: &Service, total: u64) -> Vec<Value> {
    wait_until(
        &format!("/health to count {total} clients over the shards"),
        Duration::from_secs(20),
        || {
            let h = health(svc);
            let sum = h["clients"]["websocket"].as_u64()? + h["clients"]["sse"].as_u64()?;
            (sum == total).then(|| h["shards"].as_array().cloned().unwrap_or_default())
        },
    )
}

pub fn four_shards_carry_websocket_and_sse_clients(_ctx: &mut Ctx) {
    let t = tree();
    wait_until("BTCUSDT cached", T, || {
        (get(&t.svc.url("/api/prices/BTCUSDT")).status == 200).then_some(())
    });
    let mut clients: Vec<Client> = (0..12).map(|_| t.svc.ws()).collect();
    let mut last = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let (ack, snap) = subscribe(c, &["BTCUSDT"], i as i64);
        assert_eq!(ack["type"], "subscribed");
        let seq = prices_of(&snap).first().map(|(_, q)| *q);
        assert!(
            seq.is_some(),
            "a snapshot with BTCUSDT through a shard: {snap}"
        );
        last.push(seq.unwrap_or(0));
    }
    for (c, seen) in clients.iter_mut().zip(last.iter_mut()) {
        *seen = next_price_of(c, "BTCUSDT", *seen, T);
    }
    let mut sse = t
        .svc
        .sse("/api/stream?symbols=ETHUSDT", &[])
        .expect("an SSE stream through a shard");
    let snap = sse.wait_for("snapshot", T);
    assert!(
        snap.json()["prices"][0]["symbol"] == "ETHUSDT",
        "{}",
        snap.data
    );
    let live = sse.wait_for("prices", T);
    let resume_from = live.id.expect("an id");
    let shards = spread(&t.svc, 13);
    let busy = shards
        .iter()
        .filter(|s| s["clients"]["websocket"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(busy >= 2, "12 clients on one shard: {shards:?}");
    let total: u64 = shards
        .iter()
        .map(|s| s["clients"]["websocket"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 12, "the shards add up: {shards:?}");
    // A resumed stream starts after what it had.
    drop(sse);
    let id = resume_from.to_string();
    let mut again = t
        .svc
        .sse("/api/stream?symbols=ETHUSDT", &[("Last-Event-ID", &id)])
        .expect("a resumed stream");
    let snap = again.wait_for("snapshot", T);
    for p in snap.json()["prices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        assert!(p["seq"].as_u64().unwrap_or(0) > resume_from, "{p}");
    }
    // Every client ends on the exchange's last value.
    t.ex.control("pause?on=1");
    t.ex.control("tick?symbol=BTCUSDT");
    let want = t.ex.latest("BTCUSDT").expect("a price");
    for (c, seen) in clients.iter_mut().zip(last.iter()) {
        let (f, _) = c.wait_for("the exchange's last BTCUSDT", T, |v| {
            is_prices(v)
                && v["prices"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["price"] == want.as_str()))
        });
        assert!(prices_of(&f).iter().all(|(_, q)| q > seen));
    }
}

/// Per client, every `seq` it was sent per symbol, in order.
#[derive(Default)]
struct Seen {
    seqs: std::collections::BTreeMap<String, Vec<u64>>,
    statuses: Vec<String>,
}

impl Seen {
    /// Reads frames for up to `ms`, keeping seqs and statuses.
    fn read(&mut self, c: &mut Client, ms: u64) {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            let Some(Frame::Json(v)) = c.next(Duration::from_millis(100)) else {
                continue;
            };
            if v["type"] == "status" {
                self.statuses
                    .push(v["upstream"].as_str().unwrap_or_default().to_string());
            }
            for (symbol, seq) in prices_of(&v) {
                self.seqs.entry(symbol).or_default().push(seq);
            }
        }
    }

    /// Every symbol's seqs strictly grow: none twice, none backwards.
    fn assert_growing(&self) {
        for (symbol, seqs) in &self.seqs {
            assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{symbol}: {seqs:?}");
        }
    }
}

/// Subscribes `n` clients to BTCUSDT and ETHUSDT and reads their first prices.
fn watchers(svc: &Service, n: usize) -> Vec<(Client, Seen)> {
    (0..n)
        .map(|i| {
            let mut c = svc.ws();
            let (ack, snap) = subscribe(&mut c, &["BTCUSDT", "ETHUSDT"], i as i64);
            assert_eq!(ack["type"], "subscribed", "{ack}");
            let mut seen = Seen::default();
            for (symbol, seq) in prices_of(&snap) {
                seen.seqs.entry(symbol).or_default().push(seq);
            }
            (c, seen)
        })
        .collect()
}

/// Pauses the exchange, ticks both symbols once, and waits until every client has the
/// exchange's last values.
fn converge(t: &Tree, clients: &mut [(Client, Seen)]) {
    t.ex.control("pause?on=1");
    let mut want = Vec::new();
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        t.ex.control(&format!("tick?symbol={symbol}"));
        want.push((symbol, t.ex.latest(symbol).expect("a price")));
    }
    for (c, seen) in clients.iter_mut() {
        let mut have: std::collections::BTreeMap<String, String> = Default::default();
        wait_until("every client on the exchange's last values", T, || {
            if let Some(Frame::Json(v)) = c.next(Duration::from_millis(100)) {
                for p in v["prices"].as_array().cloned().unwrap_or_default() {
                    let symbol = p["symbol"].as_str().unwrap_or_default().to_string();
                    seen.seqs
                        .entry(symbol.clone())
                        .or_default()
                        .push(p["seq"].as_u64().unwrap());
                    have.insert(symbol, p["price"].as_str().unwrap_or_default().to_string());
                }
            }
            want.iter()
                .all(|(s, p)| have.get(*s) == Some(p))
                .then_some(())
        });
        seen.assert_growing();
    }
    t.ex.control("pause?on=0");
}

pub fn a_broken_link_relinks_with_no_seq_repeated_or_backwards(_ctx: &mut Ctx) {
    let t = tree();
    let mut clients = watchers(&t.svc, 8);
    spread(&t.svc, 8);
    let linked = |h: &Value| {
        h["shards"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|s| s["linked"] == true).count())
    };
    let before = linked(&health(&t.svc));
    assert!(before >= 2, "clients on several shards");
    let r = get(&t.svc.url("/fault/unlink"));
    assert_eq!(r.status, 200, "{}", r.body);
    for (c, seen) in clients.iter_mut() {
        seen.read(c, 300);
    }
    wait_until(
        "every busy shard linked again",
        Duration::from_secs(20),
        || (linked(&health(&t.svc)) == before).then_some(()),
    );
    for (c, seen) in clients.iter_mut() {
        seen.read(c, 300);
        assert!(
            seen.statuses.contains(&"reconnecting".to_string())
                && seen.statuses.last().map(String::as_str) == Some("connected"),
            "told about the broken link and its return: {:?}",
            seen.statuses
        );
    }
    converge(&t, &mut clients);
}

pub fn a_restarted_leader_is_relinked_by_every_shard(_ctx: &mut Ctx) {
    let t = tree();
    let mut clients = watchers(&t.svc, 8);
    let seq_before = health(&t.svc)["seq"].as_u64().unwrap_or(0);
    let r = get(&t.svc.url("/fault/restart-leader"));
    assert_eq!(r.status, 200, "the leader restarted: {}", r.body);
    wait_until(
        "a new leader, linked to the busy shards",
        Duration::from_secs(30),
        || {
            let h = request("GET", &t.svc.url("/health")).ok()?;
            let h: Value = serde_json::from_str(&h.body).ok()?;
            let linked = h["shards"]
                .as_array()?
                .iter()
                .filter(|s| s["linked"] == true)
                .count();
            (h["upstream"]["state"] == "connected" && linked >= 2).then_some(())
        },
    );
    assert!(
        health(&t.svc)["seq"].as_u64().unwrap_or(0) > seq_before,
        "seq continues above"
    );
    converge(&t, &mut clients);
}

pub fn a_restarted_shard_closes_its_clients_retryably_and_they_converge(_ctx: &mut Ctx) {
    let t = tree();
    let mut clients = watchers(&t.svc, 8);
    for shard in 0..4 {
        get(&t.svc.url(&format!("/fault/restart-shard?shard={shard}")));
    }
    for (c, _) in clients.iter_mut() {
        let code = c.wait_closed(T);
        assert!(
            (1000..4500).contains(&code) && code != 1008,
            "retryable close: {code}"
        );
    }
    let mut clients = watchers(&t.svc, 8);
    converge(&t, &mut clients);
}

/// The upstream's streams at the exchange (one connection), sorted.
fn upstream_streams(ex: &Exchange) -> Option<Vec<String>> {
    let s = ex.state();
    let conns = s["conns"].as_array()?.clone();
    let mut streams: Vec<String> = conns
        .first()?
        .get("streams")?
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    streams.sort();
    (conns.len() == 1).then_some(streams)
}

pub fn on_demand_follows_the_interest_of_every_shard(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "40"]);
    let svc = Service::start(
        "shards-on-demand",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            ("FANOUT_SHARDS", "4"),
            ("UPSTREAM_MODE", "on-demand"),
            ("UPSTREAM_IDLE_CLOSE_SECONDS", "2"),
        ],
    );
    assert_eq!(ex.state()["connections"], 0, "nobody listens: no upstream");
    // Eight clients land on the shards at random; half follow BTCUSDT, half ETHUSDT.
    let mut btc: Vec<Client> = Vec::new();
    let mut eth: Vec<Client> = Vec::new();
    for i in 0..8 {
        let mut c = svc.ws();
        let symbol = if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" };
        subscribe(&mut c, &[symbol], i);
        if i % 2 == 0 {
            btc.push(c)
        } else {
            eth.push(c)
        }
    }
    let shards = spread(&svc, 8);
    let busy = shards
        .iter()
        .filter(|s| s["clients"]["websocket"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(busy >= 2, "clients on several shards: {shards:?}");
    let both = [
        "btcusdt@bookTicker",
        "btcusdt@ticker",
        "ethusdt@bookTicker",
        "ethusdt@ticker",
    ];
    wait_until("the upstream to carry both symbols", T, || {
        (upstream_streams(&ex)? == both).then_some(())
    });
    for c in btc.iter_mut().chain(eth.iter_mut()) {
        c.wait_for("a live price", T, is_prices);
    }
    // Every BTCUSDT listener leaves, whichever shard it was on: the upstream drops it.
    drop(btc);
    wait_until(
        "the upstream to drop BTCUSDT",
        Duration::from_secs(15),
        || (upstream_streams(&ex)? == both[2..]).then_some(()),
    );
    drop(eth);
    wait_until(
        "the upstream to close when nobody listens",
        Duration::from_secs(30),
        || (ex.state()["connections"] == 0).then_some(()),
    );
}

pub fn metrics_add_the_shards_up(_ctx: &mut Ctx) {
    let t = tree();
    let _clients = watchers(&t.svc, 6);
    spread(&t.svc, 6);
    let text = get(&t.svc.url("/metrics")).body;
    let total = metric(&text, "edgetick_connections{transport=\"websocket\"} ");
    let per_shard: f64 = (0..4)
        .map(|s| {
            metric(
                &text,
                &format!("edgetick_shard_connections{{shard=\"{s}\",transport=\"websocket\"}} "),
            )
        })
        .sum();
    assert_eq!((total, per_shard), (6.0, 6.0), "{text}");
    let linked: f64 = (0..4)
        .map(|s| metric(&text, &format!("edgetick_shard_linked{{shard=\"{s}\"}} ")))
        .sum();
    assert!(linked >= 2.0, "the busy shards are linked: {text}");
}

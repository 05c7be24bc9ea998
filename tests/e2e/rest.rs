//! REST, health, metrics, CORS and the OpenAPI document, end to end.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

pub fn no_data_yet_is_503_with_retry_after(ctx: &mut Ctx) {
    // A served symbol the exchange never trades: the hub is connected but has no price.
    wait_connected(&ctx.svc);
    let r = get(&ctx.svc.url(&format!("/api/prices/{NEVER_TRADED}")));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "NO_DATA");
    assert!(r.retry_after.is_some(), "Retry-After header missing");
    let listed = get(&ctx.svc.url(&format!("/api/prices?symbols={NEVER_TRADED}"))).json();
    assert_eq!(listed["prices"], json!([]));
}

pub fn health_shows_upstream_connected(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    wait_connected(&ctx.svc);
    let h = wait_until("a healthy status with fresh symbols", T, || {
        let v = get(&ctx.svc.url("/health")).json();
        (v["status"] == "healthy" && v["symbols"]["fresh"].as_u64() >= Some(1)).then_some(v)
    });
    assert_eq!(h["upstream"]["circuit_breaker"]["state"], "closed");
    assert!(h["upstream"]["connected_since"].as_i64().is_some());
    assert!(h["upstream"]["last_message_age_ms"].as_i64().is_some());
    assert_eq!(
        ctx.ex.state()["connections"],
        1,
        "exactly one upstream connection"
    );
}

pub fn rest_price_equals_the_exchange_latest(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let want = ctx
        .ex
        .latest("BTCUSDT")
        .expect("exchange has a BTCUSDT price");
    let got = wait_until("the hub to hold the exchange's latest BTCUSDT", T, || {
        let r = get(&ctx.svc.url("/api/prices/BTC-USDT"));
        let v = r.json();
        (v["price"] == want.as_str()).then_some(v)
    });
    assert_eq!(got["symbol"], "BTCUSDT");
    assert!(got["age_ms"].as_i64().is_some());
    assert!(["fresh", "acceptable"].contains(&got["freshness"].as_str().unwrap_or("")));
    for alias in ["btcusdt", "BTC%2FUSDT", "BTCUSDT"] {
        assert_eq!(
            get(&ctx.svc.url(&format!("/api/prices/{alias}"))).json()["price"],
            want.as_str(),
            "{alias}"
        );
    }
    let list = get(&ctx.svc.url("/api/prices?symbols=btc-usdt,ETHUSDT")).json();
    assert!(list["prices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["price"] == want.as_str()));
    ctx.ex.control("pause?on=0");
}

pub fn rest_errors_are_json_and_leak_nothing(ctx: &mut Ctx) {
    let cases = [
        ("GET", "/api/prices/DOGEUSDT", 404, "UNKNOWN_SYMBOL"),
        (
            "GET",
            "/api/prices?symbols=%3Cscript%3E",
            400,
            "BAD_REQUEST",
        ),
        ("GET", "/api/prices?symbols=DOGEUSDT", 404, "UNKNOWN_SYMBOL"),
        ("GET", "/ws", 426, "UPGRADE_REQUIRED"),
        ("POST", "/health", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("GET", "/api/prices?symbol=BTCUSDT", 400, "BAD_REQUEST"),
        ("GET", "/api/prices/BTCUSDT?x=1", 400, "BAD_REQUEST"),
    ];
    for (method, path, status, code) in cases {
        let r = request(method, &ctx.svc.url(path)).expect("reachable");
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(
            r.content_type.starts_with("application/json"),
            "{path}: {}",
            r.content_type
        );
        let v = r.json();
        assert_eq!(v["error"], code, "{path}");
        assert!(v["message"].is_string());
        assert!(
            !r.body.contains("at ") && !r.body.contains(".rs"),
            "internal detail leaked: {}",
            r.body
        );
    }
    let page = get(&ctx.svc.url("/"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>edgetick</title>"));
}

pub fn rest_burst_costs_a_handful_of_leader_requests(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    let want = tick_and_wait(ctx, "ETHUSDT");
    // Let the cached answer expire, so the burst starts from a miss.
    std::thread::sleep(Duration::from_millis(1_100));
    let before = metric(
        &get(&ctx.svc.url("/metrics")).body,
        "edgetick_leader_snapshot_requests_total ",
    );
    let url = ctx.svc.url("/api/prices");
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || request("GET", &url))
        })
        .collect();
    let mut ok = 0;
    for r in readers {
        let r = r.join().expect("reader thread").expect("reachable");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let eth = v["prices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["symbol"] == "ETHUSDT")
            .cloned();
        assert_eq!(
            eth.map(|p| p["price"].clone()),
            Some(json!(want)),
            "every answer agrees with the exchange"
        );
        ok += 1;
    }
    let m = get(&ctx.svc.url("/metrics")).body;
    let leader_requests = metric(&m, "edgetick_leader_snapshot_requests_total ") - before;
    eprintln!("    200 concurrent reads cost {leader_requests} leader requests");
    assert_eq!(ok, 200);
    assert!(
        leader_requests <= 3.0,
        "{leader_requests} leader requests for 200 reads"
    );
    assert!(
        metric(
            &m,
            "edgetick_rest_cache_requests_total{result=\"coalesced\"} "
        ) + metric(
            &m,
            "edgetick_rest_cache_requests_total{result=\"memory_hit\"} "
        ) >= 190.0
    );
    ctx.ex.control("pause?on=0");
}

pub fn etag_revalidates_with_304(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    tick_and_wait(ctx, "BTCUSDT");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = ctx.svc.url("/api/prices/BTC-USDT");
    let first = agent.get(&url).call().expect("200");
    let tag = first.header("ETag").expect("an ETag").to_string();
    assert!(
        first
            .header("Cache-Control")
            .unwrap_or_default()
            .contains("max-age="),
        "Cache-Control"
    );
    let again = match agent.get(&url).set("If-None-Match", &tag).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(again.status(), 304);
    assert_eq!(again.header("ETag"), Some(tag.as_str()));
    assert!(again.into_string().unwrap().is_empty(), "304 has no body");
    // New data, new tag.
    ctx.ex.control("tick?symbol=BTCUSDT");
    let fresh = wait_until("a new ETag after a new price", T, || {
        let r = agent.get(&url).set("If-None-Match", &tag).call().ok()?;
        (r.status() == 200).then(|| r.header("ETag").unwrap_or_default().to_string())
    });
    assert_ne!(fresh, tag);
    ctx.ex.control("pause?on=0");
}

pub fn cors_allows_listed_origins_and_refuses_others(ctx: &mut Ctx) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = ctx.svc.url("/api/prices");
    let pre = agent
        .request("OPTIONS", &url)
        .set("Origin", ALLOWED_ORIGIN)
        .set("Access-Control-Request-Method", "GET")
        .set("Access-Control-Request-Headers", "if-none-match")
        .call()
        .expect("preflight");
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(pre
        .header("Access-Control-Allow-Methods")
        .unwrap_or_default()
        .contains("GET"));
    assert!(pre
        .header("Access-Control-Allow-Headers")
        .unwrap_or_default()
        .contains("If-None-Match"));
    let ok = agent
        .get(&url)
        .set("Origin", ALLOWED_ORIGIN)
        .call()
        .expect("allowed origin");
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(ok.header("Vary").unwrap_or_default().contains("Origin"));
    assert!(ok
        .header("Access-Control-Expose-Headers")
        .unwrap_or_default()
        .contains("ETag"));
    for method in ["GET", "OPTIONS"] {
        match agent
            .request(method, &url)
            .set("Origin", "https://evil.example")
            .call()
        {
            Err(ureq::Error::Status(403, r)) => {
                assert_eq!(r.header("Access-Control-Allow-Origin"), None);
                let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
                assert_eq!(v["error"], "ORIGIN_NOT_ALLOWED");
            }
            other => panic!("{method} from a refused origin: {other:?}"),
        }
    }
    assert_eq!(get(&url).status, 200, "no Origin (not a browser): served");
    // The service's own pages are same-origin: their WebSocket (which always sends Origin)
    // is accepted whatever the list says.
    let own = ctx.svc.url("");
    let own = own.trim_end_matches('/');
    let mut c = ctx
        .svc
        .ws_with("/ws", &[("Origin", own)])
        .expect("same-origin WebSocket");
    subscribe(&mut c, &["BTCUSDT"], 1);
    assert_eq!(
        ctx.svc
            .ws_with("/ws", &[("Origin", "https://evil.example")])
            .err(),
        Some(403)
    );
    // Responses proxied from the leader (immutable headers) get CORS headers too.
    for path in ["/health", "/metrics"] {
        let r = agent
            .get(&ctx.svc.url(path))
            .set("Origin", ALLOWED_ORIGIN)
            .call()
            .expect(path);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some(ALLOWED_ORIGIN),
            "{path}"
        );
    }
}

pub fn metrics_are_valid_prometheus_and_counters_move(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let check = |text: &str| {
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (make tools installs it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let r = get(&ctx.svc.url("/metrics"));
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    check(&r.body);
    let before = r.body;
    let mut c = ctx.svc.ws();
    subscribe(&mut c, &["BTCUSDT"], 1);
    for _ in 0..3 {
        c.wait_for("prices", T, is_prices);
    }
    let after = get(&ctx.svc.url("/metrics")).body;
    check(&after);
    let ws = "edgetick_connections{transport=\"websocket\"} ";
    assert!(metric(&after, ws) >= 1.0);
    for counter in [
        "edgetick_messages_sent_total ",
        "edgetick_sent_bytes_total ",
        "edgetick_upstream_frames_total{source=\"binance\"} ",
        "edgetick_connections_opened_total ",
        "edgetick_fanout_duration_seconds_count ",
    ] {
        assert!(
            metric(&after, counter) > metric(&before, counter),
            "{counter} did not move"
        );
    }
    assert_eq!(
        metric(&after, "edgetick_upstream_connected{source=\"binance\"} "),
        1.0
    );
}

pub fn openapi_is_valid_and_fuzzing_finds_no_server_errors(ctx: &mut Ctx) {
    // The fuzzer reads prices: every traded symbol has one first, whatever ran before (a
    // 503 `NO_DATA` would count as a server error).
    ctx.ex.control("pause?on=0");
    for symbol in SYMBOLS.split(',') {
        let url = ctx.svc.url(&format!("/api/prices/{symbol}"));
        wait_until(&format!("a cached {symbol}"), T, || {
            (get(&url).status == 200).then_some(())
        });
    }
    let venv = support::root().join(".tools/venv/bin");
    let spec = get(&ctx.svc.url("/openapi.json"));
    assert_eq!(spec.status, 200);
    // The AsyncAPI document of the streams is served beside it (validated by `make js`).
    let streams = get(&ctx.svc.url("/asyncapi.json"));
    assert_eq!(streams.status, 200);
    assert_eq!(streams.json()["asyncapi"], "3.0.0");
    let path = support::log_dir().join("openapi.json");
    std::fs::write(&path, &spec.body).unwrap();
    let out = std::process::Command::new(venv.join("openapi-spec-validator"))
        .arg(&path)
        .output()
        .expect("openapi-spec-validator (make tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut cmd = std::process::Command::new(venv.join("schemathesis"));
    cmd.args(["run", &ctx.svc.url("/openapi.json"), "--url", &ctx.svc.url("")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        .args(["--max-examples", "40", "--seed", "7", "--request-timeout", "10"])
        .env("SCHEMATHESIS_HOOKS", "");
    let (out, text) = run_logged(cmd, "schemathesis.log");
    assert!(
        out.status.success(),
        "schemathesis found problems (target/e2e-logs/schemathesis.log):\n{text}"
    );
}

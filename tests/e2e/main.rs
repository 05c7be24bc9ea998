//! End-to-end tests: the built worker under real `wrangler dev`, the fake exchange as a real
//! process, real WebSocket and HTTP clients. One exchange and one service are shared by the
//! scenarios, which run in any order: each sets up the state it needs. Scenarios live in
//! files by area (`websocket`, `sse`, `rest`, `upstream`, `limits`, `browser`, `shards`, `events`,
//! `market`, `private`, `socketio`, `polling`, `sources`, `history`, `heatmap`,
//! `hibernation`) and are
//! registered once, in `main`.
//!
//! Run with `make test` (or `make e2e` after `make build`). `cargo test --features e2e
//! --test e2e -- NAME...` runs the scenarios whose name contains any NAME; `-- --reverse`
//! runs them in reverse order.

// A panic here is a failed test, not a failed service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod browser;
mod events;
mod heatmap;
mod hibernation;
mod history;
mod limits;
mod market;
mod polling;
mod private;
mod rest;
mod shards;
mod socketio;
mod sources;
mod sse;
mod support;
mod upstream;
mod websocket;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{get, request, wait_until, Client, Exchange, Service};

const SYMBOLS: &str = "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT";

/// On the main service's whitelist but halted at the exchange from the start (`quiet`): a
/// served symbol that never has a price, whatever ran before.
const NEVER_TRADED: &str = "LTCUSDT";
const T: Duration = Duration::from_secs(10);
type Scenario = (&'static str, fn(&mut Ctx));

/// The one browser origin the main service allows.
const ALLOWED_ORIGIN: &str = "https://app.example";

/// An exchange with the service that uses it.
struct Pair {
    ex: Exchange,
    svc: Service,
}

struct Ctx {
    ex: Exchange,
    svc: Service,
    /// Fault scenarios: a 3 s watchdog, its own exchange.
    res: Option<Pair>,
    /// On-demand scenarios: its own exchange, a 2 s idle close.
    od: Option<Pair>,
}

impl Ctx {
    fn resilience(&mut self) -> &mut Pair {
        self.res.get_or_insert_with(|| {
            let ex = Exchange::start(&[
                "--rate",
                "40",
                "--ping-interval-ms",
                "1000",
                "--pong-timeout-ms",
                "4000",
            ]);
            let svc = Service::start(
                "resilience",
                &[
                    ("UPSTREAM_URL", &ex.stream_url()),
                    ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
                    ("UPSTREAM_WATCHDOG_SECONDS", "3"),
                ],
            );
            wait_connected(&svc);
            Pair { ex, svc }
        })
    }

    fn on_demand(&mut self) -> &mut Pair {
        self.od.get_or_insert_with(|| {
            let ex = Exchange::start(&["--rate", "40"]);
            let svc = Service::start(
                "on-demand",
                &[
                    ("UPSTREAM_URL", &ex.stream_url()),
                    ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT"),
                    ("UPSTREAM_MODE", "on-demand"),
                    ("UPSTREAM_IDLE_CLOSE_SECONDS", "2"),
                ],
            );
            Pair { ex, svc }
        })
    }
}

fn health(svc: &Service) -> Value {
    get(&svc.url("/health")).json()
}

/// Reads prices frames until one carries `symbol` with a seq above `after`.
fn next_price_of(c: &mut Client, symbol: &str, after: u64, timeout: Duration) -> u64 {
    let (f, _) = c.wait_for(&format!("{symbol} above seq {after}"), timeout, |v| {
        is_prices(v) && prices_of(v).iter().any(|(s, q)| s == symbol && *q > after)
    });
    prices_of(&f)
        .into_iter()
        .find(|(s, _)| s == symbol)
        .map_or(0, |(_, q)| q)
}

fn prices_of(frame: &Value) -> Vec<(String, u64)> {
    frame["prices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["symbol"].as_str().unwrap_or_default().to_string(),
                        p["seq"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_prices(v: &Value) -> bool {
    v["type"] == "prices"
}

fn subscribe(c: &mut Client, symbols: &[&str], id: i64) -> (Value, Value) {
    c.send_json(json!({"action": "subscribe", "symbols": symbols, "id": id}));
    let ack = c.next_json(T);
    let snap = c.next_json(T);
    (ack, snap)
}

fn wait_connected(svc: &Service) -> Value {
    wait_until(
        "/health to report the upstream connected",
        Duration::from_secs(20),
        || {
            let r = request("GET", &svc.url("/health")).ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (v["upstream"]["state"] == "connected").then_some(v)
        },
    )
}

/// Runs a test tool to completion; its combined output is also kept in target/e2e-logs/`log`.
fn run_logged(mut cmd: std::process::Command, log: &str) -> (std::process::Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (make tools installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(support::log_dir().join(log), &text).unwrap();
    (out, text)
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no metric {line_prefix:?}"))
}

/// Ticks `symbol` once at the exchange and waits until the hub serves that price; returns it.
fn tick_and_wait(ctx: &Ctx, symbol: &str) -> String {
    ctx.ex.control(&format!("tick?symbol={symbol}"));
    let want = ctx.ex.latest(symbol).expect("the exchange has a price");
    let url = ctx.svc.url(&format!("/api/prices/{symbol}"));
    wait_until(&format!("the hub to hold the latest {symbol}"), T, || {
        (get(&url).json()["price"] == want.as_str()).then_some(())
    });
    want
}

/// Registers each scenario once: its name is its function's name.
macro_rules! scenarios {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$((stringify!($name), $module::$name as fn(&mut Ctx))),*]
    };
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let scenarios = scenarios![
        rest::no_data_yet_is_503_with_retry_after,
        rest::health_shows_upstream_connected,
        websocket::subscribe_gets_subscribed_then_snapshot_then_live_prices,
        websocket::clients_get_only_their_symbols,
        websocket::bad_frames_get_errors_and_the_connection_keeps_working,
        websocket::oversized_frame_closes_1009_and_a_bystander_keeps_receiving,
        rest::rest_price_equals_the_exchange_latest,
        rest::rest_errors_are_json_and_leak_nothing,
        upstream::exchange_pings_are_answered,
        upstream::hub_reconnects_after_the_exchange_restarts,
        upstream::service_restart_serves_cached_prices_from_storage,
        upstream::a_silent_upstream_is_replaced_within_10_s_by_default,
        limits::caps_are_checked_before_symbols,
        limits::a_burst_of_connections_leaves_a_connected_client_flowing,
        rest::rest_burst_costs_a_handful_of_leader_requests,
        rest::etag_revalidates_with_304,
        rest::cors_allows_listed_origins_and_refuses_others,
        rest::metrics_are_valid_prometheus_and_counters_move,
        rest::openapi_is_valid_and_fuzzing_finds_no_server_errors,
        upstream::dropped_upstream_resumes_prices,
        upstream::stalled_upstream_is_replaced_by_the_watchdog,
        upstream::garbage_frames_leave_other_symbols_flowing,
        upstream::server_shutdown_rotates_without_gap_or_duplicate,
        upstream::on_demand_subscribes_upstream_only_while_someone_listens,
        upstream::refusals_open_the_breaker_within_the_attempt_budget,
        sse::sse_snapshot_then_live_events_with_the_pairs_alias,
        sse::sse_read_by_a_real_event_source_client,
        sse::sse_resumes_with_last_event_id,
        sse::sse_leaves_out_unserved_channels_and_says_so,
        sse::sse_keepalive_comes_at_least_every_15_seconds,
        sse::sse_disconnect_is_removed_promptly,
        sse::a_reader_that_stops_does_not_delay_a_bystander,
        limits::tokens_and_origins_guard_the_streams,
        limits::every_limit_has_its_code_and_spares_a_bystander,
        limits::a_websocket_client_that_stops_acking_is_warned_then_closed_4009,
        browser::dashboard_and_client_library_in_chromium,
        browser::dashboard_survives_exchange_and_service_restarts,
        shards::four_shards_carry_websocket_and_sse_clients,
        shards::a_broken_link_relinks_with_no_seq_repeated_or_backwards,
        shards::a_restarted_leader_is_relinked_by_every_shard,
        shards::a_restarted_shard_closes_its_clients_retryably_and_they_converge,
        shards::on_demand_follows_the_interest_of_every_shard,
        shards::metrics_add_the_shards_up,
        events::publish_reaches_every_shard_once_in_order,
        events::each_publish_refusal_has_its_status,
        events::a_returning_client_recovers_what_it_missed,
        events::sse_streams_events_and_resumes_by_last_event_id,
        events::a_client_too_slow_for_events_is_closed_4009_and_recovers,
        market::trades_arrive_in_order_with_no_gap_and_the_book_has_ten_levels,
        market::a_candle_updates_and_its_close_arrives_once,
        market::market_channels_stream_over_sse_and_the_upstream_follows_them,
        private::private_channels_reach_only_their_owner,
        private::a_token_expiring_mid_connection_closes_4401,
        private::private_history_is_bounded_oldest_first_and_never_reuses_an_offset,
        socketio::socketio_prices_clients_get_their_rooms_acks_and_exceptions,
        socketio::socketio_root_clients_get_the_broadcast,
        socketio::socketio_unknown_namespaces_are_refused,
        socketio::socketio_sessions_outlive_many_pings_through_four_shards,
        socketio::socketio_clients_reconnect_by_themselves_after_the_service_restarts,
        socketio::socketio_tokens_come_in_connect_or_the_query,
        socketio::socketio_requests_engine_io_cannot_serve_get_its_400s,
        socketio::socketio_a_malformed_packet_closes_only_its_own_session,
        polling::polling_packets_go_by_post_and_come_back_by_get,
        polling::polling_a_second_get_at_once_ends_the_session,
        polling::polling_upgrades_to_a_websocket_by_the_probe,
        sources::both_sources_reach_one_client_and_rest,
        sources::twelve_data_faults_leave_binance_flowing,
        sources::a_refused_twelve_data_key_is_reported_while_binance_flows,
        sources::the_dashboard_groups_both_sources_in_chromium,
        sources::on_demand_follows_each_source_apart,
        history::candles_are_backfilled_then_extended_by_closes,
        history::candle_backfill_backs_off_on_429_and_recovers,
        heatmap::heatmap_subscribers_get_a_map_at_once_and_updates_only_on_change,
        hibernation::subscriptions_of_any_size_survive_hibernation,
    ];
    let mut selected: Vec<&Scenario> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    // `--reverse` runs them backwards: a scenario that leans on what ran before fails then.
    if std::env::args().any(|a| a == "--reverse") {
        selected.reverse();
    }
    let started = Instant::now();
    let ex = Exchange::start(&[
        "--rate",
        "40",
        "--ping-interval-ms",
        "1000",
        "--pong-timeout-ms",
        "4000",
        "--quiet",
        NEVER_TRADED,
    ]);
    ex.control("pause?on=1");
    let upstream = ex.stream_url();
    let served = format!("{SYMBOLS},{NEVER_TRADED}");
    let svc = Service::start(
        "main",
        &[
            ("UPSTREAM_URL", &upstream),
            ("SYMBOLS", &served),
            ("MAX_FRAME_BYTES", "4096"),
            ("ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ],
    );
    eprintln!(
        "e2e: exchange on {}, service on {} (ready in {:?})",
        ex.port,
        svc.port,
        started.elapsed()
    );
    let mut ctx = Ctx {
        ex,
        svc,
        res: None,
        od: None,
    };
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, run) in selected {
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| run(&mut ctx))) {
            Ok(()) => {
                passed += 1;
                eprintln!("test {name} ... ok ({:.1?})", t.elapsed());
            }
            Err(_) => {
                failed.push(*name);
                eprintln!("test {name} ... FAILED ({:.1?})", t.elapsed());
            }
        }
    }
    drop(ctx);
    println!("e2e: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}; process logs are in target/e2e-logs/");
        std::process::exit(1);
    }
}

//! `fake-exchange`: a Binance-compatible market-stream server, with Twelve Data's price
//! WebSocket beside it, for tests and offline demos.
//!
//! ```text
//! fake-exchange [--host 127.0.0.1] [--port 9001] [--rate 20] [--seed 1]
//!               [--ping-interval-ms 20000] [--pong-timeout-ms 60000]
//!               [--max-incoming-per-sec 5] [--refuse STATUS] [--stall] [--garbage-every N]
//!               [--cadence-ms 1000] [--quiet BTCUSDT,ETHUSDT]
//!               [--twelvedata-key KEY] [--twelvedata-symbols AAPL,EUR/USD]
//! ```
//!
//! Twelve Data's price WebSocket is served beside Binance's streams at `/v1/quotes/price`:
//! `--twelvedata-key` makes it refuse any other `apikey` with 401 (any key passes without
//! it), `--twelvedata-symbols` is what it lists (the seed's symbols by default).
//!
//! Binance's REST history is served too: `GET /api/v3/klines` (the candles the stream closed,
//! made-up ones before them, the open one last) and `GET /fapi/v1/openInterest`, with the
//! `rest` control's faults (a status with `Retry-After` for `count` requests, slow answers).
//!
//! `--cadence-ms`: a symbol that has not moved for this long gets its 24 h ticker again with
//! a new event time, as Binance sends `@ticker` every second even in a quiet market (and
//! while paused here); 0 turns it off. Only the `stall` fault silences it. `--quiet` halts
//! symbols from the start, like the `quiet` control (no ticks, no cadence).

mod klines;
mod market;
mod server;

use std::time::Duration;

use server::{Exchange, Settings};

fn usage(problem: &str) -> ! {
    eprintln!("fake-exchange: {problem}\nsee the top of fake-exchange/src/main.rs for the flags");
    std::process::exit(2)
}

fn value<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, flag: &str) -> T {
    let Some(raw) = args.next() else {
        usage(&format!("{flag} needs a value"))
    };
    raw.parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: cannot parse {raw:?}")))
}

#[tokio::main]
async fn main() {
    let mut host = "127.0.0.1".to_string();
    let mut port: u16 = 9001;
    let mut settings = Settings::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--host" => host = value(&mut args, &flag),
            "--port" => port = value(&mut args, &flag),
            "--rate" => settings.rate = value(&mut args, &flag),
            "--seed" => settings.seed = value(&mut args, &flag),
            "--ping-interval-ms" => {
                settings.ping_interval = Duration::from_millis(value(&mut args, &flag))
            }
            "--pong-timeout-ms" => {
                settings.pong_timeout = Duration::from_millis(value(&mut args, &flag))
            }
            "--max-incoming-per-sec" => settings.max_incoming_per_sec = value(&mut args, &flag),
            "--refuse" => settings.refuse = Some(value(&mut args, &flag)),
            "--stall" => settings.stall = true,
            "--garbage-every" => settings.garbage_every = value(&mut args, &flag),
            "--cadence-ms" => settings.cadence = Duration::from_millis(value(&mut args, &flag)),
            "--quiet" => {
                let list: String = value(&mut args, &flag);
                settings.quiet = list
                    .split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .collect();
            }
            "--twelvedata-key" => settings.twelvedata_key = Some(value(&mut args, &flag)),
            "--twelvedata-symbols" => settings.twelvedata_symbols = Some(value(&mut args, &flag)),
            "-h" | "--help" => usage("usage"),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => usage(&format!("cannot listen on {host}:{port}: {e}")),
    };
    let ex = Exchange::new(settings);
    tokio::spawn(ex.clone().run_ticker());
    tokio::spawn(ex.clone().run_cadence());
    eprintln!("fake-exchange listening on ws://{host}:{port}/stream (control: http://{host}:{port}/control/state)");
    let app = ex.router();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("fake-exchange: server error: {e}");
        std::process::exit(1);
    }
}

//! Why an upstream connection ended, and the upstream state clients and operators see.

use serde::{Deserialize, Serialize};

/// A connect that has not opened (or a replacement that has not delivered) within this
/// long has failed.
pub const CONNECT_TIMEOUT_MS: i64 = 15_000;

/// Why a connection ended or never started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The upgrade was answered with an HTTP status (429, 418, 451, ...).
    Refused {
        /// The status.
        status: u16,
        /// `Retry-After`, when the exchange gave one.
        retry_after_ms: Option<i64>,
    },
    /// The connection could not be made, or errored.
    Network(String),
    /// The exchange closed the connection.
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The connect did not open in time.
    ConnectTimeout,
    /// Open but silent for longer than the watchdog allows.
    Silent {
        /// How long it was silent.
        for_ms: i64,
    },
}

impl Failure {
    /// Stable name for `/health` and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused { .. } => "refused",
            Failure::Network(_) => "network",
            Failure::Closed { .. } => "closed",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Silent { .. } => "silent",
        }
    }

    /// A sentence for `/health` and logs.
    pub fn describe(&self) -> String {
        match self {
            Failure::Refused {
                status,
                retry_after_ms,
            } => match retry_after_ms {
                Some(ms) => format!("HTTP {status} (Retry-After {} s)", ms / 1000),
                None => format!("HTTP {status}"),
            },
            Failure::Network(m) => m.clone(),
            Failure::Closed { code, reason } => format!("closed by the exchange: {code} {reason}"),
            Failure::ConnectTimeout => format!("no connection within {CONNECT_TIMEOUT_MS} ms"),
            Failure::Silent { for_ms } => format!("open but silent for {for_ms} ms"),
        }
    }
}

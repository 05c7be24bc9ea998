//! Typed errors of the pure core; the edge maps each one to exactly one JSON frame or response.

use serde_json::Value;
use thiserror::Error;

/// Why an upstream frame was skipped. Counted and logged, never applied to the cache, so
/// one bad frame can never corrupt a price or stop other symbols.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The frame did not parse as JSON at all.
    #[error("upstream frame is not valid JSON: {0}")]
    BadJson(String),
    /// A field the stream kind always carries was absent or of the wrong type.
    #[error("upstream frame lacks field `{0}`")]
    MissingField(&'static str),
    /// A stream edgetick does not read (or a malformed stream name).
    #[error("upstream stream `{0}` is not one edgetick reads")]
    UnknownStream(String),
    /// A price or quantity that is not a plain non-negative decimal string.
    #[error("upstream field `{field}` is not a decimal string: {value:?}")]
    BadDecimal {
        /// The Binance field name.
        field: &'static str,
        /// The offending value, for the log.
        value: String,
    },
    /// The payload's symbol disagrees with its stream name: trusting either would be a guess.
    #[error("upstream frame names symbol {data} on stream {stream}")]
    SymbolMismatch {
        /// The stream name from the envelope.
        stream: String,
        /// The `s` field of the payload.
        data: String,
    },
}

/// Client-facing error codes of docs/protocol.md: a closed set, so clients can switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame was not JSON.
    BadJson,
    /// JSON, but not a well-formed command (wrong types, missing fields, binary frame).
    BadRequest,
    /// An `action` edgetick does not know.
    UnknownAction,
    /// A symbol that is not on the whitelist.
    UnknownSymbol,
    /// A channel this service does not serve.
    UnknownChannel,
    /// The connection would exceed `MAX_SYMBOLS_PER_CONNECTION`.
    TooManySymbols,
    /// The connection sends faster than `CLIENT_MESSAGES_PER_SECOND`.
    RateLimited,
    /// A channel this connection may not read (another user's, or outside its token's
    /// `channels`).
    Forbidden,
    /// A token was required and not given, or was wrong.
    Unauthorized,
}

impl ErrorCode {
    /// The wire spelling, shared by WebSocket frames and REST bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "BAD_JSON",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::UnknownAction => "UNKNOWN_ACTION",
            ErrorCode::UnknownSymbol => "UNKNOWN_SYMBOL",
            ErrorCode::UnknownChannel => "UNKNOWN_CHANNEL",
            ErrorCode::TooManySymbols => "TOO_MANY_SYMBOLS",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
        }
    }
}

/// A rejected client frame: answered with an `error` frame, the connection stays open.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// What kind of mistake it was.
    pub code: ErrorCode,
    /// A sentence a person can act on.
    pub message: String,
    /// The frame's `id`, echoed so the client can match the error to its request.
    pub id: Option<Value>,
}

impl ClientError {
    /// Builds an error without an id (the id is attached once the frame is known to carry one).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
            id: None,
        }
    }

    /// Attaches the request id so the error can be matched to its request.
    pub fn with_id(mut self, id: Option<Value>) -> Self {
        self.id = id;
        self
    }
}

/// A configuration value that cannot be used. Start-up stops on it rather than guessing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("configuration {name} = {value:?} is invalid: {problem}")]
pub struct ConfigError {
    /// The variable's name, as in `wrangler.toml`.
    pub name: &'static str,
    /// The value that was given (never a secret's value).
    pub value: String,
    /// What is wrong and what would be right.
    pub problem: String,
}

/// An HTTP-level failure of a REST route, mapped once at the edge to status + JSON body.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The symbol is not on the whitelist (or not a symbol at all).
    #[error("{0}")]
    UnknownSymbol(String),
    /// Nothing is cached for the symbol yet; try again shortly.
    #[error("{message}")]
    NoData {
        /// Human-readable explanation.
        message: String,
        /// Seconds after which a retry is sensible.
        retry_after_s: u32,
    },
    /// A malformed query or request.
    #[error("{0}")]
    BadRequest(String),
    /// No such route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// `/ws` was requested without a WebSocket upgrade.
    #[error("{0}")]
    UpgradeRequired(String),
    /// The service is at `MAX_CONNECTIONS`.
    #[error("{0}")]
    AtCapacity(String),
    /// The request's `Origin` is not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A token was required and missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// More symbols than `MAX_SYMBOLS_PER_CONNECTION`.
    #[error("{0}")]
    TooManySymbols(String),
    /// A stream asked for a channel its token may not read.
    #[error("{0}")]
    ChannelForbidden(String),
    /// A publish to a channel that is not served.
    #[error("{0}")]
    UnknownChannel(String),
    /// A publish body over `MAX_EVENT_BYTES`.
    #[error("{0}")]
    TooLarge(String),
    /// Publishing faster than `PUBLISH_PER_SECOND`.
    #[error("{message}")]
    RateLimited {
        /// Why.
        message: String,
        /// When to try again.
        retry_after_s: u32,
    },
    /// A refused Engine.IO request (`/socket.io/`): 400 with the protocol's own body,
    /// `{"code":N,"message":…}` (0 transport unknown, 3 bad request, 5 unsupported version).
    #[error("{message}")]
    EngineIo {
        /// Engine.IO's error code.
        code: u8,
        /// Engine.IO's message for it.
        message: &'static str,
    },
    /// Misconfiguration found at start-up: the operator must fix `wrangler.toml`.
    #[error("{0}")]
    Config(String),
    /// Anything else; the message is generic so nothing internal leaks.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status for the error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::UnknownSymbol(_) | ApiError::NotFound(_) => 404,
            ApiError::NoData { .. } | ApiError::AtCapacity(_) => 503,
            ApiError::BadRequest(_)
            | ApiError::TooManySymbols(_)
            | ApiError::UnknownChannel(_)
            | ApiError::EngineIo { .. } => 400,
            ApiError::TooLarge(_) => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) | ApiError::ChannelForbidden(_) => 403,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::UpgradeRequired(_) => 426,
            ApiError::Config(_) | ApiError::Internal => 500,
        }
    }

    /// Machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSymbol(_) => "UNKNOWN_SYMBOL",
            ApiError::NoData { .. } => "NO_DATA",
            ApiError::BadRequest(_) | ApiError::EngineIo { .. } => "BAD_REQUEST",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            ApiError::UpgradeRequired(_) => "UPGRADE_REQUIRED",
            ApiError::AtCapacity(_) => "AT_CAPACITY",
            ApiError::Forbidden(_) => "ORIGIN_NOT_ALLOWED",
            ApiError::ChannelForbidden(_) => "FORBIDDEN",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::TooManySymbols(_) => "TOO_MANY_SYMBOLS",
            ApiError::UnknownChannel(_) => "UNKNOWN_CHANNEL",
            ApiError::TooLarge(_) => "TOO_LARGE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Config(_) => "CONFIG_ERROR",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// `Retry-After` seconds, where the error is worth retrying.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::NoData { retry_after_s, .. } => Some(*retry_after_s),
            ApiError::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            ApiError::AtCapacity(_) => Some(5),
            _ => None,
        }
    }

    /// The JSON body `{"error":CODE,"message":...}` of docs/protocol.md.
    pub fn body(&self) -> String {
        if let ApiError::EngineIo { code, message } = self {
            return serde_json::json!({"code": code, "message": message}).to_string();
        }
        serde_json::json!({"error": self.code(), "message": self.to_string()}).to_string()
    }
}

//! Socket.IO v5 over Engine.IO v4, the protocol the stock `socket.io-client` speaks.
//! [`engine`] reads and writes Engine.IO packets, long-polling bodies and the handshake;
//! [`packet`] reads Socket.IO packets (namespace, ack id, payload, with the reference
//! parser's checks) and writes what a server sends; [`frame`] turns payloads into the
//! packets of a namespace; [`sid`] writes and reads the ids of long-polling sessions.

pub mod engine;
pub mod frame;
pub mod packet;
pub mod sid;

pub use frame::Nsp;

//! Socket.IO v5 over Engine.IO v4, the protocol the stock `socket.io-client` speaks: the
//! codec the Socket.IO wire is built on. [`engine`] reads and writes Engine.IO packets and
//! long-polling bodies and the handshake; [`packet`] reads Socket.IO packets (namespace, ack
//! id, payload, with the reference parser's checks) and writes what a server sends.

pub mod engine;
pub mod packet;

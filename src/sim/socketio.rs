//! The simulation's Socket.IO clients, as the stock `socket.io-client` behaves: a session
//! joins `/prices` (every `subscribe`/`unsubscribe` with an ack, one key per packet) or `/`
//! (every broadcast symbol, no command), answers each ping, and would give up on a server
//! silent for a ping interval and timeout. What it receives is checked as the JSON wire's
//! frames are: `priceUpdate`'s `ts` (the root's `timestamp`) only grows per symbol, channel
//! events keep their offsets in order.

use serde_json::{json, Value};

use super::clients::SimClient;
use crate::core::wire::socketio::engine::EnginePacket;
use crate::core::wire::socketio::packet::{Packet, PacketType};

/// The Engine.IO pong a client answers a ping with.
pub const PONG: &str = "3";

impl SimClient {
    /// One Engine.IO packet from the server: its replies (a pong), or a violation.
    pub fn take_sio(&mut self, text: &str, now: i64) -> Result<Vec<String>, String> {
        self.frames += 1;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("  sio conn {} on {:?} <- {text}", self.conn, self.holder);
        }
        let conn = self.conn;
        let packet = EnginePacket::decode(text)
            .map_err(|e| format!("conn {conn}: not an Engine.IO packet ({e}): {text}"))?;
        let sio = self.sio.as_mut().ok_or("not a Socket.IO client")?;
        match packet {
            EnginePacket::Open(_) => sio.last_ping = now,
            EnginePacket::Ping(_) => {
                sio.last_ping = now;
                return Ok(vec![PONG.to_string()]);
            }
            EnginePacket::Message(m) => {
                let p = Packet::decode(m)
                    .map_err(|e| format!("conn {conn}: not a Socket.IO packet ({e}): {m}"))?;
                self.sio_packet(&p)?;
            }
            _ => {}
        }
        Ok(Vec::new())
    }

    fn sio_packet(&mut self, p: &Packet<'_>) -> Result<(), String> {
        let conn = self.conn;
        let Some(sio) = self.sio.as_mut() else {
            return Ok(());
        };
        match p.kind {
            PacketType::Connect => {
                sio.joined = true;
                self.pending = self.pending.saturating_sub(1);
                if sio.root {
                    self.subs.extend(sio.broadcast.iter().cloned());
                }
            }
            PacketType::ConnectError => {
                return Err(format!("conn {conn}: CONNECT refused: {:?}", p.data));
            }
            PacketType::Ack => self.sio_ack(p)?,
            PacketType::Event => {
                let Some((name, args)) = p.event() else {
                    return Err(format!("conn {conn}: an event without a name: {p:?}"));
                };
                let arg = args.first().cloned().unwrap_or(Value::Null);
                self.sio_event(name, &arg)?;
            }
            PacketType::Disconnect => {}
        }
        Ok(())
    }

    /// An ack: what it answered applies when it says `ok`.
    fn sio_ack(&mut self, p: &Packet<'_>) -> Result<(), String> {
        let conn = self.conn;
        let waited =
            p.id.and_then(|id| self.sio.as_mut().and_then(|s| s.acks.remove(&id)));
        let Some((subscribe, key)) = waited else {
            return Err(format!("conn {conn}: an ack nobody waits for: {p:?}"));
        };
        self.pending = self.pending.saturating_sub(1);
        let arg = p.data.as_ref().and_then(|d| d.get(0));
        if arg.and_then(|a| a.get("ok")).and_then(Value::as_bool) != Some(true) {
            self.errors += 1;
            return Ok(());
        }
        if subscribe {
            self.not_its_own(&key)?;
        }
        let set = if key.contains(':') {
            &mut self.channels
        } else {
            &mut self.subs
        };
        if subscribe {
            set.insert(key);
        } else {
            set.remove(&key);
            self.last.remove(&key);
            self.offsets.remove(&key);
        }
        Ok(())
    }

    /// A named event: prices checked as the JSON wire's (their time standing for `seq`),
    /// channel payloads (the JSON wire's frames) as they are.
    fn sio_event(&mut self, name: &str, arg: &Value) -> Result<(), String> {
        match name {
            "priceUpdate" => {
                let price =
                    json!({"symbol": arg["symbol"], "seq": arg["ts"], "price": arg["price"]});
                self.take(&json!({"type": "prices", "prices": [price]}).to_string())
                    .map(|_| self.frames -= 1)
            }
            "price_update" => {
                // The ISO time's digits, in order, count as the time does.
                let iso = arg["timestamp"].as_str().unwrap_or_default();
                let digits: String = iso.chars().filter(char::is_ascii_digit).collect();
                let seq = digits.parse::<u64>().unwrap_or(0);
                let price =
                    json!({"symbol": arg["symbol"], "seq": seq, "price": arg["price"].to_string()});
                self.take(&json!({"type": "prices", "prices": [price]}).to_string())
                    .map(|_| self.frames -= 1)
            }
            "exception" => Err(format!(
                "conn {}: an exception, though every command asks for an ack: {arg}",
                self.conn
            )),
            "connected" => Ok(()),
            _ => self.take(&arg.to_string()).map(|_| self.frames -= 1),
        }
    }
}

//! Who a connection belongs to (docs/events.md, private channels): an HS256 JWT signed with `JWT_SECRET`, with `sub`
//! (the user), `exp` (when it stops being valid) and optionally `channels` (all it may
//! read). Checked by the Worker before a connection reaches an object, and by the object
//! that carries it, which keeps the identity for the connection's life (in its attachment)
//! and closes it 4401 when the token expires.
//!
//! Only `HS256` is accepted, whatever else a header names: a token cannot choose its own
//! algorithm (`none`, or a public-key one against the shared secret).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::channel::{self, USER};
use super::ids::Identity;

/// Why a token is refused (all answered 401 `UNAUTHORIZED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token given.
    #[error("a token is required: ?token=<JWT> or Authorization: Bearer <JWT>")]
    Missing,
    /// Not three base64url parts of JSON, or not HS256.
    #[error("the token is not an HS256 JWT")]
    Malformed,
    /// The signature does not match `JWT_SECRET`.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// `exp` is past.
    #[error("the token has expired")]
    Expired,
    /// `sub` or `exp` missing or of the wrong type.
    #[error("the token needs `sub` (a user id) and `exp` (seconds)")]
    Claims,
    /// Not the service's shared `AUTH_TOKEN`.
    #[error("the token is not the one this service expects")]
    Mismatch,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<f64>,
    channels: Option<Vec<String>>,
}

/// Checks `token` against `secret` at `now_ms`.
pub fn verify(secret: &str, token: &str, now_ms: i64) -> Result<Identity, AuthError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let header: Header = decode_json(h)?;
    if header.alg != "HS256" {
        return Err(AuthError::Malformed);
    }
    let sig = base64url(sig).ok_or(AuthError::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| AuthError::Malformed)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(c.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&sig)
        .map_err(|_| AuthError::BadSignature)?;
    let claims: Claims = decode_json(c)?;
    let (Some(sub), Some(exp)) = (claims.sub, claims.exp) else {
        return Err(AuthError::Claims);
    };
    if !channel::valid_user(&sub) {
        return Err(AuthError::Claims);
    }
    let exp_ms = (exp * 1000.0) as i64;
    if exp_ms <= now_ms {
        return Err(AuthError::Expired);
    }
    Ok(Identity {
        sub,
        exp_ms,
        channels: claims.channels,
    })
}

/// The identity a connection presents, when `JWT_SECRET` asks for one (`Ok(None)` without
/// it: the deployment has no users).
pub fn identify(
    secret: Option<&str>,
    token: Option<&str>,
    now_ms: i64,
) -> Result<Option<Identity>, AuthError> {
    let Some(secret) = secret else {
        return Ok(None);
    };
    verify(secret, token.ok_or(AuthError::Missing)?, now_ms).map(Some)
}

/// Whether `token` lets its bearer in, and as whom: with `JWT_SECRET` a valid JWT (its
/// identity), else with `AUTH_TOKEN` that very token (nobody in particular), else anyone.
pub fn check(
    jwt_secret: Option<&str>,
    auth_token: Option<&str>,
    token: Option<&str>,
    now_ms: i64,
) -> Result<Option<Identity>, AuthError> {
    match (jwt_secret, auth_token) {
        (Some(_), _) => identify(jwt_secret, token, now_ms),
        (None, Some(expected)) => match token {
            Some(t) if crate::core::text::token_matches(expected, t) => Ok(None),
            Some(_) => Err(AuthError::Mismatch),
            None => Err(AuthError::Missing),
        },
        (None, None) => Ok(None),
    }
}

/// Who a new WebSocket belongs to, and whether it still owes a token. With `JWT_SECRET` the
/// upgrade's token must be valid; a session that may present its token later (Socket.IO's
/// `CONNECT`: `deferrable`) is let in without one and owes it. With `AUTH_TOKEN` only a
/// deferrable session is checked here (the Worker checked every other at its upgrade).
pub fn at_upgrade(
    jwt_secret: Option<&str>,
    auth_token: Option<&str>,
    token: Option<&str>,
    deferrable: bool,
    now_ms: i64,
) -> Result<(Option<Identity>, bool), AuthError> {
    if jwt_secret.is_none() && !deferrable {
        return Ok((None, false));
    }
    match check(jwt_secret, auth_token, token, now_ms) {
        Ok(who) => Ok((who, false)),
        Err(_) if deferrable => Ok((None, true)),
        Err(e) => Err(e),
    }
}

/// Why `who` may not read `channel`, if it may not: a private channel is its owner's only,
/// and a token with `channels` reads only those.
pub fn forbidden(who: Option<&Identity>, channel: &str) -> Option<String> {
    if let Some(rest) = channel.strip_prefix(USER) {
        let owner = rest.split(':').next().unwrap_or_default();
        match who {
            None => {
                return Some(format!(
                    "{channel} is private: connect with its owner's token"
                ))
            }
            Some(w) if w.sub != owner => {
                return Some(format!("{channel} belongs to another user"));
            }
            Some(_) => {}
        }
    }
    let limited = who.and_then(|w| w.channels.as_ref());
    match limited {
        Some(list) if !list.iter().any(|c| c == channel) => {
            Some(format!("this token may not read {channel}"))
        }
        _ => None,
    }
}

/// Signs `claims` (JSON) as an HS256 JWT with `secret`: what the application's backend does
/// when it issues a token (the tests use it too).
pub fn sign_hs256(secret: &str, claims: &str) -> String {
    sign_with_header(secret, r#"{"alg":"HS256","typ":"JWT"}"#, claims)
}

/// A JWT of `header` and `claims`, signed with HS256 whatever `header` says.
pub(crate) fn sign_with_header(secret: &str, header: &str, claims: &str) -> String {
    let signing = format!(
        "{}.{}",
        base64url_encode(header.as_bytes()),
        base64url_encode(claims.as_bytes())
    );
    let sig = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(signing.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!("{signing}.{}", base64url_encode(&sig))
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            let six = ((acc >> (18 - 6 * i)) & 63) as usize;
            out.push(A.get(six).map_or('A', |c| char::from(*c)));
        }
    }
    out
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = base64url(part).ok_or(AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWTs use it.
fn base64url(s: &str) -> Option<Vec<u8>> {
    let value = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= value(*b)? << (18 - 6 * i);
        }
        let keep = chunk.len() - 1;
        out.extend(acc.to_be_bytes().iter().skip(1).take(keep));
    }
    Some(out)
}

#[cfg(test)]
pub mod tests;

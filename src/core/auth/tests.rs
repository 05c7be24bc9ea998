//! Token checks: a valid token, each way one is refused, and what an identity may read.

use super::*;

fn sign_alg(secret: &str, alg: &str, claims: &str) -> String {
    sign_with_header(secret, &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#), claims)
}

fn sign(secret: &str, claims: &str) -> String {
    sign_hs256(secret, claims)
}

fn b64(bytes: &[u8]) -> String {
    base64url_encode(bytes)
}

#[test]
fn a_valid_token_names_its_user_and_expiry() {
    let t = sign(
        "s3cret",
        r#"{"sub":"alice","exp":2000,"channels":["user:alice:portfolio"]}"#,
    );
    let id = verify("s3cret", &t, 1_000_000).unwrap();
    assert_eq!((id.sub.as_str(), id.exp_ms), ("alice", 2_000_000));
    assert_eq!(id.channels, Some(vec!["user:alice:portfolio".to_string()]));
}

#[test]
fn every_bad_token_is_refused_with_its_reason() {
    let good = sign("s3cret", r#"{"sub":"alice","exp":2000}"#);
    assert_eq!(verify("other", &good, 0), Err(AuthError::BadSignature));
    assert_eq!(verify("s3cret", &good, 2_000_000), Err(AuthError::Expired));
    assert_eq!(verify("s3cret", "a.b", 0), Err(AuthError::Malformed));
    assert_eq!(verify("s3cret", "", 0), Err(AuthError::Malformed));
    let none = sign_alg("s3cret", "none", r#"{"sub":"alice","exp":2000}"#);
    assert_eq!(
        verify("s3cret", &none, 0),
        Err(AuthError::Malformed),
        "alg none"
    );
    let no_sub = sign("s3cret", r#"{"exp":2000}"#);
    assert_eq!(verify("s3cret", &no_sub, 0), Err(AuthError::Claims));
    let bad_sub = sign("s3cret", r#"{"sub":"a:b","exp":2000}"#);
    assert_eq!(verify("s3cret", &bad_sub, 0), Err(AuthError::Claims));
    let (h, rest) = good.split_once('.').unwrap();
    let forged = format!(
        "{h}.{}.{}",
        b64(br#"{"sub":"mallory","exp":2000}"#),
        rest.split_once('.').unwrap().1
    );
    assert_eq!(
        verify("s3cret", &forged, 0),
        Err(AuthError::BadSignature),
        "claims swapped"
    );
}

#[test]
fn a_private_channel_is_its_owners_and_a_claim_limits_the_rest() {
    let alice = Identity {
        sub: "alice".into(),
        exp_ms: 1,
        channels: None,
    };
    assert_eq!(forbidden(Some(&alice), "user:alice:portfolio"), None);
    assert!(forbidden(Some(&alice), "user:bob:portfolio").is_some());
    assert!(forbidden(None, "user:alice:portfolio").is_some());
    assert_eq!(forbidden(None, "events:signals"), None);
    let limited = Identity {
        channels: Some(vec!["events:signals".into()]),
        ..alice
    };
    assert_eq!(forbidden(Some(&limited), "events:signals"), None);
    assert!(forbidden(Some(&limited), "trades:BTCUSDT").is_some());
    assert!(forbidden(Some(&limited), "user:alice:portfolio").is_some());
}

#[test]
fn base64url_round_trips() {
    for s in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        &[255, 254, 253],
    ] {
        assert_eq!(base64url(&b64(s)).as_deref(), Some(s));
    }
    assert_eq!(base64url("a"), None);
    assert_eq!(base64url("a+b/"), None, "standard base64 is not base64url");
}

#[test]
fn a_socketio_upgrade_may_owe_its_token_to_its_connect() {
    let jwt = sign_hs256("k", r#"{"sub":"alice","exp":4000000000}"#);
    let ok = at_upgrade(Some("k"), None, Some(&jwt), true, 0).unwrap();
    assert_eq!(
        (ok.0.map(|w| w.sub), ok.1),
        (Some("alice".to_string()), false)
    );
    assert_eq!(at_upgrade(Some("k"), None, None, true, 0), Ok((None, true)));
    assert_eq!(
        at_upgrade(Some("k"), None, None, false, 0),
        Err(AuthError::Missing)
    );
    assert_eq!(
        at_upgrade(None, Some("t"), Some("t"), true, 0),
        Ok((None, false))
    );
    assert_eq!(
        at_upgrade(None, Some("t"), Some("x"), true, 0),
        Ok((None, true))
    );
    assert_eq!(
        at_upgrade(None, Some("t"), None, false, 0),
        Ok((None, false)),
        "the Worker checked /ws"
    );
    assert_eq!(at_upgrade(None, None, None, true, 0), Ok((None, false)));
}

#[test]
fn a_token_is_checked_against_the_jwt_secret_else_the_shared_token() {
    let jwt = sign_hs256("k", r#"{"sub":"bob","exp":4000000000}"#);
    let who = check(Some("k"), Some("t"), Some(&jwt), 0).unwrap();
    assert_eq!(who.map(|w| w.sub).as_deref(), Some("bob"));
    assert_eq!(
        check(Some("k"), Some("t"), Some("t"), 0),
        Err(AuthError::Malformed)
    );
    assert_eq!(check(None, Some("t"), Some("t"), 0), Ok(None));
    assert_eq!(
        check(None, Some("t"), Some("x"), 0),
        Err(AuthError::Mismatch)
    );
    assert_eq!(check(None, Some("t"), None, 0), Err(AuthError::Missing));
    assert_eq!(check(None, None, None, 0), Ok(None));
}

//! The objects of the tree as the Worker reaches them: the leader, the shard a client
//! connection is handed to, and the test faults sent to either.

use worker::{Env, Method, Request, RequestInit, Response, Result, Stub};

use crate::core::config::Config;
use crate::core::ids::Holder;
use crate::core::request::{shard_for, Fault, FaultKind, ObjectRequest};

/// Every name of the leader; `id_from_name` makes it unique world-wide.
const LEADER: &str = "leader";

/// The leader object.
pub(super) fn leader(env: &Env, cfg: &Config) -> Result<Stub> {
    env.durable_object("PRICE_HUB")?
        .id_from_name(LEADER)?
        .get_stub_with_location_hint(&cfg.leader_location)
}

/// Fan-out shard `n` (`fanout-{n}`).
fn shard(env: &Env, n: u32) -> Result<Stub> {
    env.durable_object("FANOUT")?
        .id_from_name(&format!("fanout-{n}"))?
        .get_stub()
}

/// Where a client connection goes: a fan-out shard drawn at random, or the leader when
/// there are no shards (see [`shard_for`]).
pub(super) fn entry(env: &Env, cfg: &Config) -> Result<Stub> {
    match shard_for(cfg, js_sys::Math::random()) {
        Some(n) => shard(env, n),
        None => leader(env, cfg),
    }
}

/// The object that holds an Engine.IO session.
pub(super) fn holder(env: &Env, cfg: &Config, holder: Holder) -> Result<Stub> {
    match holder {
        Holder::Leader => leader(env, cfg),
        Holder::Shard(n) => shard(env, n),
    }
}

/// Asks the leader object: the one place a [`ObjectRequest`] becomes a request to it.
pub(super) async fn ask_leader(env: &Env, cfg: &Config, to: &ObjectRequest) -> Result<Response> {
    leader(env, cfg)?
        .fetch_with_str(&format!("https://leader{}", to.path()))
        .await
}

/// Hands a publish body to the leader.
pub(super) async fn publish_to_leader(env: &Env, cfg: &Config, body: String) -> Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
    let url = format!("https://leader{}", ObjectRequest::Publish.path());
    let req = Request::new_with_init(&url, &init)?;
    leader(env, cfg)?.fetch_with_request(req).await
}

/// Hands a test fault to the object it concerns (`TEST_FAULTS=on` only).
pub(super) async fn inject(env: &Env, cfg: &Config, fault: Fault) -> Result<Response> {
    let kind = match fault {
        Fault::Unlink => FaultKind::Unlink,
        Fault::RestartLeader | Fault::RestartShard(_) => FaultKind::Restart,
        Fault::WipeHistory => FaultKind::WipeHistory,
        Fault::Hibernate(_) => FaultKind::Hibernate,
    };
    let request = ObjectRequest::Fault { kind };
    match fault {
        Fault::RestartShard(n) | Fault::Hibernate(Some(n)) => {
            let path = request.path();
            shard(env, n)?
                .fetch_with_str(&format!("https://edgetick{path}"))
                .await
        }
        _ => ask_leader(env, cfg, &request).await,
    }
}

//! The objects of the tree as the Worker (and a shard's link) reaches them: the leader, the
//! shard a client connection is handed to, and the test faults sent to either.
//!
//! Stubs are made from the runtime's own types rather than workers-rs' wrappers: a new
//! connection's upgrade goes through here, and the wrappers cost it a check of the binding's
//! class name, a new `idFromName` hash and, on the way back, a copy of the response.

use std::cell::RefCell;

use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{Object, Promise, Reflect};
use worker::wasm_bindgen_futures::JsFuture;
use worker::worker_sys::{
    web_sys, DurableObject as RawStub, DurableObjectId, DurableObjectNamespace,
};
use worker::{Env, Method, Request, RequestInit, Response, Result};

use crate::core::config::Config;
use crate::core::fastmap::FastMap;
use crate::core::ids::Holder;
use crate::core::request::{shard_for, Fault, FaultKind, ObjectRequest};

/// Every name of the leader; `id_from_name` makes it unique world-wide.
const LEADER: &str = "leader";

thread_local! {
    /// Object ids by holder, derived once per isolate: `idFromName` hashes its name every
    /// time, and an id (unlike a stub) is not tied to the request that made it.
    static IDS: RefCell<FastMap<Holder, JsValue>> = RefCell::new(FastMap::default());
    /// The leader's location hint as the options object `get` takes, made once.
    static HINT: RefCell<Option<(String, JsValue)>> = const { RefCell::new(None) };
}

/// A stub of `holder` for this request.
fn stub(env: &Env, cfg: &Config, holder: Holder) -> Result<RawStub> {
    let binding = match holder {
        Holder::Leader => "PRICE_HUB",
        Holder::Shard(_) => "FANOUT",
    };
    // Unchecked: a binding that is missing or of another kind fails at its first call below
    // with the runtime's error, which is returned like any other.
    let namespace: DurableObjectNamespace =
        Reflect::get(env.as_ref(), &JsValue::from_str(binding))?.unchecked_into();
    let id = match IDS.with(|ids| ids.borrow().get(&holder).cloned()) {
        Some(id) => id,
        None => {
            let name = match holder {
                Holder::Leader => LEADER.to_string(),
                Holder::Shard(n) => format!("fanout-{n}"),
            };
            let id = JsValue::from(namespace.id_from_name(&name)?);
            IDS.with(|ids| ids.borrow_mut().insert(holder, id.clone()));
            id
        }
    };
    let id: &DurableObjectId = id.unchecked_ref();
    let stub = match holder {
        Holder::Leader => namespace.get_with_options(id, &hint(&cfg.leader_location)?),
        Holder::Shard(_) => namespace.get(id),
    };
    Ok(stub?)
}

/// `{locationHint}` for the leader's stub.
fn hint(location: &str) -> Result<JsValue> {
    if let Some((_, options)) = HINT
        .with(|h| h.borrow().clone())
        .filter(|(l, _)| l == location)
    {
        return Ok(options);
    }
    let options = Object::new();
    Reflect::set(&options, &"locationHint".into(), &location.into())?;
    let options = JsValue::from(options);
    HINT.with(|h| *h.borrow_mut() = Some((location.to_string(), options.clone())));
    Ok(options)
}

/// Where a client connection goes: a fan-out shard drawn at random, or the leader when
/// there are no shards (see [`shard_for`]).
pub(super) fn entry(cfg: &Config) -> Holder {
    match shard_for(cfg, worker::js_sys::Math::random()) {
        Some(n) => Holder::Shard(n),
        None => Holder::Leader,
    }
}

async fn answer(promise: Promise) -> Result<web_sys::Response> {
    Ok(JsFuture::from(promise).await?.dyn_into()?)
}

/// Hands a client's request to `holder`: the object's own promise of its answer.
pub(super) fn hand_over(
    env: &Env,
    cfg: &Config,
    holder: Holder,
    req: &web_sys::Request,
) -> Result<Promise> {
    Ok(stub(env, cfg, holder)?.fetch_with_request(req)?)
}

/// Hands a client's request to `holder` and returns the object's response as it is (a
/// WebSocket upgrade's included).
pub(super) async fn forward(
    env: &Env,
    cfg: &Config,
    holder: Holder,
    req: &web_sys::Request,
) -> Result<web_sys::Response> {
    answer(hand_over(env, cfg, holder, req)?).await
}

/// Asks `holder` for `path`.
pub(super) async fn ask(env: &Env, cfg: &Config, holder: Holder, path: &str) -> Result<Response> {
    let url = format!("https://edgetick{path}");
    let promise = stub(env, cfg, holder)?.fetch_with_str(&url)?;
    Ok(answer(promise).await?.into())
}

/// Sends a request the edge made to the leader.
pub(super) async fn to_leader(env: &Env, cfg: &Config, req: Request) -> Result<Response> {
    let promise = stub(env, cfg, Holder::Leader)?.fetch_with_request(req.inner())?;
    Ok(answer(promise).await?.into())
}

/// Asks the leader object: the one place a [`ObjectRequest`] becomes a request to it.
pub(super) async fn ask_leader(env: &Env, cfg: &Config, to: &ObjectRequest) -> Result<Response> {
    ask(env, cfg, Holder::Leader, &to.path()).await
}

/// Hands a publish body to the leader.
pub(super) async fn publish_to_leader(env: &Env, cfg: &Config, body: String) -> Result<Response> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(JsValue::from_str(&body)));
    let url = format!("https://leader{}", ObjectRequest::Publish.path());
    to_leader(env, cfg, Request::new_with_init(&url, &init)?).await
}

/// Hands a test fault to the object it concerns (`TEST_FAULTS=on` only).
pub(super) async fn inject(env: &Env, cfg: &Config, fault: Fault) -> Result<Response> {
    let kind = match fault {
        Fault::Unlink => FaultKind::Unlink,
        Fault::RestartLeader | Fault::RestartShard(_) => FaultKind::Restart,
        Fault::WipeHistory => FaultKind::WipeHistory,
        Fault::Hibernate(_) => FaultKind::Hibernate,
    };
    let path = ObjectRequest::Fault { kind }.path();
    match fault {
        Fault::RestartShard(n) | Fault::Hibernate(Some(n)) => {
            ask(env, cfg, Holder::Shard(n), &path).await
        }
        _ => ask(env, cfg, Holder::Leader, &path).await,
    }
}

//! Shared helpers for the API tests: a node's API state on a temporary SQLite store, a
//! request through the router, and signed events.

#![allow(dead_code)]

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use starling_api::{ApiState, Exposure, WebState};
use starling_core::{EventBus, Ingest};
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Limits, Tag};
use starling_store::{SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub struct Node {
    pub state: Arc<ApiState>,
    pub owner: Keys,
    pub _dir: tempfile::TempDir,
}

/// The login token of the test nodes.
pub const LOGIN_TOKEN: &str = "test-login-token-0123456789";

pub fn node_with(limits: Limits) -> Node {
    node_signing(limits, true)
}

/// A node that holds the owner's secret key (`signs`) or only the public key.
pub fn node_signing(limits: Limits, signs: bool) -> Node {
    node_exposed(limits, signs, Exposure::Loopback)
}

/// As [`node_signing`], reachable by other machines or not.
pub fn node_exposed(limits: Limits, signs: bool, exposure: Exposure) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let owner = Keys::generate();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("events.db"), StoreOptions::default()).unwrap(),
    );
    let bus = EventBus::new();
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        bus.clone(),
        owner.public_key(),
        limits.clone(),
    ));
    let state = Arc::new(ApiState {
        ingest,
        store,
        bus,
        owner: owner.public_key(),
        limits,
        name: "test".into(),
        started: Instant::now(),
        shutdown: CancellationToken::new(),
        connections: AtomicUsize::new(0),
        subscriptions: AtomicUsize::new(0),
        remote: None,
        web: WebState::new(signs.then(|| owner.clone()), Some(LOGIN_TOKEN)),
        limiter: starling_api::Limiter::new(starling_api::RateConfig::default()),
        exposure,
    });
    Node {
        state,
        owner,
        _dir: dir,
    }
}

pub fn node() -> Node {
    node_with(Limits::default())
}

pub fn note(keys: &Keys, content: &str) -> Event {
    EventBuilder::new(Kind::TextNote, content)
        .finalize(keys)
        .unwrap()
}

pub fn event(keys: &Keys, kind: u16, content: &str, tags: Vec<Tag>) -> Event {
    EventBuilder::new(Kind::from_u16(kind), content)
        .tags(tags)
        .finalize(keys)
        .unwrap()
}

/// Sends `request` through the node's router: the answer's status, headers and body.
pub async fn call(node: &Node, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = starling_api::router(node.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body.to_vec())
}

//! `GET /metrics` through the real router: the Prometheus text format, figures that move
//! when a client posts and subscribes, and the same owner-only rule as `/api/status`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use starling_api::run_session;
use starling_proto::Keys;

use common::{call, node, note, Node};

/// `GET /metrics` from `peer`: status, content type and body.
async fn scrape(node: &Node, peer: &str) -> (StatusCode, String, String) {
    let mut request = Request::get("/metrics")
        .header(header::HOST, "127.0.0.1:7777")
        .body(Body::empty())
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let (status, headers, body) = call(node, request).await;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, String::from_utf8(body).unwrap())
}

/// The value of the sample `series` (name with labels, as written) in `body`.
fn value(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
        .parse()
        .unwrap()
}

async fn answer(rx: &mut mpsc::Receiver<String>) -> Value {
    let text = tokio::time::timeout(Duration::from_secs(5), rx.next())
        .await
        .expect("an answer within 5 s")
        .expect("the session is open");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn metrics_move_when_a_client_posts_and_subscribes() {
    let node = node();
    let (status, content_type, body) = scrape(&node, "127.0.0.1:50000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(body.contains("# TYPE starling_ingest_events_total counter"));
    assert_eq!(value(&body, "starling_events_stored"), 0);
    assert_eq!(value(&body, "starling_websocket_connections"), 0);

    let (mut tx, incoming) = mpsc::channel(16);
    let (outgoing, mut rx) = mpsc::channel(64);
    let slot = node.state.limiter.admit(None).expect("a connection slot");
    tokio::spawn(run_session(incoming, outgoing, node.state.clone(), slot));
    let mine = note(&node.owner, "counted");
    tx.send(json!(["EVENT", mine]).to_string()).await.unwrap();
    assert_eq!(answer(&mut rx).await[2], json!(true));
    tx.send(json!(["EVENT", mine]).to_string()).await.unwrap();
    assert_eq!(answer(&mut rx).await[2], json!(true));
    let stranger = note(&Keys::generate(), "not the owner");
    tx.send(json!(["EVENT", stranger]).to_string())
        .await
        .unwrap();
    assert_eq!(answer(&mut rx).await[2], json!(false));
    tx.send(json!(["REQ", "s", {"limit": 0}]).to_string())
        .await
        .unwrap();
    assert_eq!(answer(&mut rx).await[0], json!("EOSE"));

    let (_, _, body) = scrape(&node, "127.0.0.1:50000").await;
    assert_eq!(value(&body, "starling_events_stored"), 1);
    assert_eq!(
        value(&body, "starling_ingest_events_total{result=\"accepted\"}"),
        1
    );
    assert_eq!(
        value(&body, "starling_ingest_events_total{result=\"duplicate\"}"),
        1
    );
    assert_eq!(
        value(&body, "starling_ingest_events_total{result=\"rejected\"}"),
        1
    );
    assert_eq!(value(&body, "starling_websocket_connections"), 1);
    assert_eq!(value(&body, "starling_req_subscriptions"), 1);

    tx.send(json!(["CLOSE", "s"]).to_string()).await.unwrap();
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.next().await.is_some() {}
    })
    .await
    .expect("the session ends");
    let (_, _, body) = scrape(&node, "127.0.0.1:50000").await;
    assert_eq!(value(&body, "starling_websocket_connections"), 0);
    assert_eq!(value(&body, "starling_req_subscriptions"), 0);
}

#[tokio::test]
async fn metrics_need_a_login_from_other_devices() {
    let node = node();
    let (status, _, body) = scrape(&node, "192.168.1.20:50000").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("starling_events_stored"));
}

//! The HTTP side of the API through the real router: NostrP2P's REST routes (decoded the
//! way its Flutter client decodes them), CORS, NIP-11, status, and a WebSocket session over
//! a real TCP listener.

mod common;

use std::io::Read;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use rmpv::Value as Mp;
use serde_json::{json, Value};
use starling_proto::{Event, Keys, Tag};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

use common::{call, event, node, note, Node};

async fn post(
    node: &Node,
    path: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let (status, headers, bytes) = call(node, request).await;
    (status, bytes, headers)
}

async fn publish(node: &Node, event: &Event) -> (StatusCode, Value) {
    let (status, body, _) = post(
        node,
        "/publish",
        "application/json",
        serde_json::to_string(event).unwrap(),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap())
}

/// Decodes a `/req` answer as NostrP2P's client does: gunzip, msgpack map, `Evts`.
async fn req(node: &Node, filter: Value) -> Vec<Vec<(String, Mp)>> {
    let (status, body, headers) = post(node, "/req", "application/json", filter.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    let mut packed = Vec::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_end(&mut packed)
        .unwrap();
    let root = rmpv::decode::read_value(&mut packed.as_slice()).unwrap();
    let evts = root.as_map().unwrap();
    assert_eq!(evts.len(), 1);
    assert_eq!(evts[0].0.as_str(), Some("Evts"));
    evts[0]
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_map()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), v.clone()))
                .collect()
        })
        .collect()
}

fn field<'a>(e: &'a [(String, Mp)], key: &str) -> &'a Mp {
    &e.iter().find(|(k, _)| k == key).unwrap().1
}

#[tokio::test]
async fn rest_publish_and_req_speak_nostrp2p() {
    let node = node();
    let friend = Keys::generate();
    let follows = event(
        &node.owner,
        3,
        "",
        vec![Tag::parse(["p", &friend.public_key().to_hex(), "", ""]).unwrap()],
    );
    let post1 = note(&node.owner, "one");
    let reply = event(
        &node.owner,
        1,
        "re",
        vec![
            Tag::parse(["e", &post1.id.to_hex(), "", "root"]).unwrap(),
            Tag::public_key(node.owner.public_key()),
        ],
    );
    for e in [&follows, &post1, &reply] {
        assert_eq!(
            publish(&node, e).await,
            (StatusCode::OK, json!({ "Status": "SUCCESS" }))
        );
    }
    // The friend's post arrives as it will from the network: through the ingest path.
    let theirs = note(&friend, "from a friend");
    node.state
        .ingest
        .submit(theirs.clone(), starling_core::Origin::Import)
        .await
        .unwrap();

    let timeline = req(
        &node,
        json!({ "kinds": [40000], "since": -1, "until": -1, "limit": 300 }),
    )
    .await;
    let mut want: Vec<&Event> = vec![&follows, &post1, &reply, &theirs];
    want.sort_by(|a, b| b.cmp(a)); // oldest first
    let got_ids: Vec<&[u8]> = timeline
        .iter()
        .map(|e| field(e, "Id").as_slice().unwrap())
        .collect();
    let want_ids: Vec<&[u8]> = want.iter().map(|e| e.id.as_bytes().as_slice()).collect();
    assert_eq!(got_ids, want_ids);
    let e = &timeline[0];
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Id",
            "Pubkey",
            "Created_at",
            "Kind",
            "Tags",
            "Content",
            "Sig"
        ]
    );
    assert!(matches!(field(e, "Created_at"), Mp::F64(_)));
    assert!(matches!(field(e, "Pubkey"), Mp::Binary(b) if b.len() == 32));
    assert!(matches!(field(e, "Sig"), Mp::Binary(b) if b.len() == 64));
    let reply_mp = timeline
        .iter()
        .find(|e| field(e, "Content").as_str() == Some("re"))
        .unwrap();
    let tags = field(reply_mp, "Tags").as_array().unwrap();
    assert!(tags
        .iter()
        .flat_map(|t| t.as_array().unwrap())
        .all(|v| matches!(v, Mp::Binary(_))));

    let one = req(&node, json!({ "kinds": [1], "ids": [post1.id.to_hex()], "authors": [node.owner.public_key().to_hex()] })).await;
    assert_eq!(one.len(), 1);
    assert_eq!(field(&one[0], "Content").as_str(), Some("one"));
    let fl = req(
        &node,
        json!({ "kinds": [3], "authors": [node.owner.public_key().to_hex()] }),
    )
    .await;
    assert_eq!(field(&fl[0], "Kind").as_u64(), Some(3));
    assert!(req(
        &node,
        json!({ "kinds": [0], "authors": [friend.public_key().to_hex()] })
    )
    .await
    .is_empty());
    assert!(req(&node, json!({ "kinds": [7] })).await.is_empty());
}

#[tokio::test]
async fn rest_refuses_bad_input() {
    let node = node();
    let mut bad_sig = serde_json::to_value(note(&node.owner, "x")).unwrap();
    bad_sig["sig"] = json!(note(&node.owner, "y").sig.to_string());
    let (status, body, _) = post(&node, "/publish", "application/json", bad_sig.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["Error"],
        json!("invalid: bad signature")
    );
    let (status, _, _) = post(&node, "/publish", "text/plain", "{}".into()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = publish(&node, &note(&Keys::generate(), "foreign")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["Error"].as_str().unwrap().starts_with("blocked:"));
    assert_eq!(node.state.store.stats().await.unwrap().events, 0);
}

#[tokio::test]
async fn cors_preflight_matches_nostrp2p() {
    let node = node();
    let request = Request::builder()
        .method("OPTIONS")
        .uri("/req")
        .header(header::ORIGIN, "http://localhost:5000")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
        .body(Body::empty())
        .unwrap();
    let response = starling_api::router(node.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert!(response.status().is_success());
    let h = response.headers();
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:5000"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "3600");
    assert_eq!(h["access-control-allow-private-network"], "true");
    assert!(h[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .contains("POST"));
}

#[tokio::test]
async fn nip11_status_and_a_websocket_over_tcp() {
    let node = node();
    let request = Request::get("/")
        .header(header::ACCEPT, "application/nostr+json")
        .body(Body::empty())
        .unwrap();
    let response = starling_api::router(node.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let doc: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(doc["pubkey"], json!(node.owner.public_key().to_hex()));
    let nips = doc["supported_nips"].as_array().unwrap();
    assert!(
        nips.contains(&json!(45)) && nips.contains(&json!(77)),
        "{nips:?}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(starling_api::serve(listener, node.state.clone()));
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    let e = note(&node.owner, "over tcp");
    ws.send(Message::text(json!(["EVENT", e]).to_string()))
        .await
        .unwrap();
    let Some(Ok(Message::Text(ok))) = ws.next().await else {
        panic!("no OK")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&ok).unwrap(),
        json!(["OK", e.id.to_hex(), true, ""])
    );

    // From the owner's machine: the status route serves loopback only (or a login).
    let mut request = Request::get("/api/status").body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    let response = starling_api::router(node.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(status["events"], json!(1));
    assert_eq!(status["connections"], json!(1));
    node.state.shutdown.cancel();
}

//! An API exposed to other machines (`Exposure::Exposed`): the relay's write gate driven
//! over channels (EVENT refused with `auth-required` and the AUTH challenge until NIP-42
//! AUTH as the owner; another key's AUTH unlocks nothing; public reads open), which gate a
//! connection gets from its peer address and headers, and REST `POST /publish` from other
//! machines only with the login token as a bearer token.
//!
//! "Other machines" are peer addresses in `ConnectInfo` from 192.0.2.0/24 (the
//! documentation range): nothing is sent anywhere. The real server over TLS between
//! network namespaces is tests/clients/python/test_exposed_tls.py.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use starling_api::{run_gated_session, Exposure, WriteGate};
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Limits, Tag};

use common::{call, node_exposed, note, Node, LOGIN_TOKEN};

const REMOTE: &str = "192.0.2.10:50000";
const LOCAL: &str = "127.0.0.1:50000";

fn exposed() -> Node {
    node_exposed(Limits::default(), true, Exposure::Exposed)
}

struct Client {
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
}

impl Client {
    fn attach(node: &Node, gate: WriteGate) -> Self {
        let (tx, incoming) = mpsc::channel(64);
        let (outgoing, rx) = mpsc::channel(1024);
        let slot = node.state.limiter.admit(None).expect("a connection slot");
        tokio::spawn(run_gated_session(
            incoming,
            outgoing,
            node.state.clone(),
            slot,
            gate,
        ));
        Self { tx, rx }
    }

    async fn send(&mut self, msg: Value) {
        self.tx.send(msg.to_string()).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let text = tokio::time::timeout(Duration::from_secs(5), self.rx.next())
            .await
            .expect("an answer within 5 s")
            .expect("the session is open");
        serde_json::from_str(&text).unwrap()
    }

    /// The ids of the stored events `filter` matches (the subscription is closed after).
    async fn ids(&mut self, sub: &str, filter: Value) -> Vec<String> {
        self.send(json!(["REQ", sub, filter])).await;
        let mut ids = Vec::new();
        loop {
            let m = self.recv().await;
            match m[0].as_str().unwrap() {
                "EVENT" => ids.push(m[2]["id"].as_str().unwrap().to_string()),
                "EOSE" => break,
                other => panic!("unexpected {other}: {m}"),
            }
        }
        self.send(json!(["CLOSE", sub])).await;
        ids
    }

    /// AUTH with `keys` on `challenge`; the OK answer.
    async fn auth(&mut self, keys: &Keys, challenge: &str) -> Value {
        let auth = EventBuilder::new(Kind::Authentication, "")
            .tags([
                Tag::parse(["relay", "wss://192.0.2.1:7777"]).unwrap(),
                Tag::parse(["challenge", challenge]).unwrap(),
            ])
            .finalize(keys)
            .unwrap();
        self.send(json!(["AUTH", auth])).await;
        self.recv().await
    }
}

#[tokio::test]
async fn another_machine_publishes_only_after_auth_as_the_owner() {
    let node = exposed();
    let mut c = Client::attach(&node, WriteGate::OwnerAuth);
    let first = note(&node.owner, "before auth");
    c.send(json!(["EVENT", first])).await;
    let challenge = c.recv().await;
    assert_eq!(
        challenge[0], "AUTH",
        "the challenge comes first: {challenge}"
    );
    let challenge = challenge[1].as_str().unwrap().to_string();
    let refused = c.recv().await;
    assert_eq!(refused[0], "OK");
    assert_eq!(refused[1], first.id.to_hex());
    assert_eq!(refused[2], false);
    assert!(
        refused[3].as_str().unwrap().starts_with("auth-required: "),
        "{refused}"
    );
    assert!(c
        .ids("a", json!({ "ids": [first.id.to_hex()] }))
        .await
        .is_empty());

    // Another key's AUTH succeeds as NIP-42 AUTH, and unlocks nothing.
    let stranger = Keys::generate();
    assert_eq!(c.auth(&stranger, &challenge).await[2], true);
    c.send(json!(["EVENT", first])).await;
    let still = c.recv().await;
    assert_eq!(still[2], false, "{still}");
    assert!(still[3].as_str().unwrap().starts_with("auth-required: "));

    // The owner's AUTH opens the gate.
    let ok = c.auth(&node.owner, &challenge).await;
    assert_eq!(ok[2], true, "{ok}");
    c.send(json!(["EVENT", first])).await;
    assert_eq!(c.recv().await, json!(["OK", first.id.to_hex(), true, ""]));
    assert_eq!(
        c.ids("b", json!({ "ids": [first.id.to_hex()] })).await,
        vec![first.id.to_hex()]
    );
}

#[tokio::test]
async fn public_reads_need_no_auth_and_refusals_keep_their_order() {
    let node = exposed();
    let stored = note(&node.owner, "public");
    let mut owner = Client::attach(&node, WriteGate::Open);
    owner.send(json!(["EVENT", stored])).await;
    assert_eq!(owner.recv().await[2], true);

    let mut reader = Client::attach(&node, WriteGate::OwnerAuth);
    assert_eq!(
        reader
            .ids(
                "timeline",
                json!({ "authors": [node.owner.public_key().to_hex()] })
            )
            .await,
        vec![stored.id.to_hex()]
    );
    // Three EVENTs pipelined: three refusals, in order, one challenge.
    let events: Vec<Event> = (0..3)
        .map(|i| note(&node.owner, &format!("n{i}")))
        .collect();
    for e in &events {
        reader.send(json!(["EVENT", e])).await;
    }
    assert_eq!(reader.recv().await[0], "AUTH");
    for e in &events {
        let m = reader.recv().await;
        assert_eq!(
            (m[0].as_str(), m[1].as_str(), m[2].as_bool()),
            (Some("OK"), Some(e.id.to_hex().as_str()), Some(false)),
            "{m}"
        );
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    h
}

async fn login_cookie(node: &Node) -> String {
    let mut request = Request::post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "node.example:7777")
        .body(Body::from(json!({ "token": LOGIN_TOKEN }).to_string()))
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(REMOTE.parse::<SocketAddr>().unwrap()));
    let (status, headers, _) = call(node, request).await;
    assert_eq!(status, StatusCode::OK);
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn which_connections_must_authenticate() {
    let local: SocketAddr = LOCAL.parse().unwrap();
    let remote: SocketAddr = REMOTE.parse().unwrap();
    let local_host = headers(&[("host", "127.0.0.1:7777")]);

    let loopback_only = node_exposed(Limits::default(), true, Exposure::Loopback);
    let gate =
        |node: &Node, peer, h: &HeaderMap| WriteGate::for_connection(&node.state, Some(peer), h);
    assert_eq!(
        gate(&loopback_only, remote, &local_host),
        WriteGate::Open,
        "unchanged when not exposed"
    );

    let node = exposed();
    assert_eq!(gate(&node, local, &local_host), WriteGate::Open);
    assert_eq!(gate(&node, remote, &local_host), WriteGate::OwnerAuth);
    let proxied = headers(&[
        ("host", "127.0.0.1:7777"),
        ("x-forwarded-for", "198.51.100.7"),
    ]);
    assert_eq!(
        gate(&node, local, &proxied),
        WriteGate::OwnerAuth,
        "a reverse proxy's client"
    );
    assert_eq!(
        WriteGate::for_connection(&node.state, None, &local_host),
        WriteGate::OwnerAuth,
        "no known peer"
    );

    // The node's own web client, logged in on another device.
    let cookie = login_cookie(&node).await;
    let page = headers(&[
        ("host", "node.example:7777"),
        ("origin", "https://node.example:7777"),
        ("cookie", &cookie),
    ]);
    assert_eq!(gate(&node, remote, &page), WriteGate::Open);
    let other_site = headers(&[
        ("host", "node.example:7777"),
        ("origin", "https://evil.example"),
        ("cookie", &cookie),
    ]);
    assert_eq!(
        gate(&node, remote, &other_site),
        WriteGate::OwnerAuth,
        "cross-site WebSocket"
    );
}

async fn rest_publish(
    node: &Node,
    peer: &str,
    extra: &[(&str, &str)],
    event: &Event,
) -> (StatusCode, Value) {
    let mut request = Request::post("/publish")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "127.0.0.1:7777");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(event.as_json())).unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    let (status, _, body) = call(node, request).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn rest_publish_from_another_machine_needs_the_token() {
    let node = exposed();
    let refused = rest_publish(&node, REMOTE, &[], &note(&node.owner, "a")).await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    assert!(
        refused.1["Error"]
            .as_str()
            .unwrap()
            .starts_with("auth-required: "),
        "{refused:?}"
    );
    let wrong = rest_publish(
        &node,
        REMOTE,
        &[("authorization", "Bearer not-the-token")],
        &note(&node.owner, "b"),
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {LOGIN_TOKEN}");
    let ok = rest_publish(
        &node,
        REMOTE,
        &[("authorization", &bearer)],
        &note(&node.owner, "c"),
    )
    .await;
    assert_eq!(ok, (StatusCode::OK, json!({ "Status": "SUCCESS" })));
    // The token does not lift the write rule: still only the owner's events.
    let foreign = rest_publish(
        &node,
        REMOTE,
        &[("authorization", &bearer)],
        &note(&Keys::generate(), "d"),
    )
    .await;
    assert_eq!(foreign.0, StatusCode::FORBIDDEN);
    // The owner's own machine needs no token.
    assert_eq!(
        rest_publish(&node, LOCAL, &[], &note(&node.owner, "e"))
            .await
            .0,
        StatusCode::OK
    );
    // A node that is not exposed behaves as before, whoever asks.
    let loopback_only = node_exposed(Limits::default(), true, Exposure::Loopback);
    assert_eq!(
        rest_publish(
            &loopback_only,
            REMOTE,
            &[],
            &note(&loopback_only.owner, "f")
        )
        .await
        .0,
        StatusCode::OK
    );
}

//! The web client's routes through the real router: the page and its files (content
//! types, gzip, caching), the access rule (loopback free; other devices only with a
//! session from the login token or a signed challenge; DNS rebinding refused), and
//! signing with and without the owner's secret key.
//!
//! "Other devices" are requests carrying a non-loopback peer address in `ConnectInfo`
//! (192.0.2.0/24, the documentation range): nothing is sent anywhere, the router only reads
//! the address.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use serde_json::{json, Value};
use starling_api::web::SESSION_COOKIE;
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Limits, Tag};

use common::{call, node, node_signing, Node, LOGIN_TOKEN};

const LOCAL: &str = "127.0.0.1:50000";
const REMOTE: &str = "192.0.2.10:50000";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` from `peer` (with `Host: 127.0.0.1:7777` unless it names one).
async fn send(node: &Node, peer: &str, mut request: Request<Body>) -> Answer {
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    if !request.headers().contains_key(header::HOST) {
        request
            .headers_mut()
            .insert(header::HOST, "127.0.0.1:7777".parse().unwrap());
    }
    let (status, headers, body) = call(node, request).await;
    Answer {
        status,
        headers,
        body,
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn with_cookie(mut request: Request<Body>, cookie: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    request
}

/// The `/app/VERSION/` prefix the page names.
async fn asset_prefix(node: &Node) -> String {
    let page = send(node, LOCAL, get("/")).await.text();
    let start = page.find("/app/").expect("the page names its assets") + "/app/".len();
    let version = &page[start..start + page[start..].find('/').unwrap()];
    format!("/app/{version}")
}

/// `name=value` of the session cookie a login answer sets.
fn session_of(answer: &Answer) -> String {
    let set = answer.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn the_page_and_its_files() {
    let node = node();
    let page = send(&node, LOCAL, get("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-cache");
    assert!(page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page.text().contains("type=\"module\""), "{}", page.text());

    let prefix = asset_prefix(&node).await;
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let plain = send(&node, LOCAL, get(&format!("{prefix}/{file}"))).await;
        assert_eq!(plain.status, StatusCode::OK, "{file}");
        assert_eq!(plain.headers[header::CONTENT_TYPE], content_type);
        assert!(plain.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assert!(!plain.headers.contains_key(header::CONTENT_ENCODING));
        let mut request = get(&format!("{prefix}/{file}"));
        request
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, "gzip, br".parse().unwrap());
        let zipped = send(&node, LOCAL, request).await;
        assert_eq!(zipped.headers[header::CONTENT_ENCODING], "gzip");
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(zipped.body.as_slice()),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, plain.body, "{file}");
    }
    let stale = send(&node, LOCAL, get("/app/000000000000/app.js")).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);

    // A revalidation of the page costs nothing.
    let etag = page.headers[header::ETAG].clone();
    let mut again = get("/");
    again.headers_mut().insert(header::IF_NONE_MATCH, etag);
    assert_eq!(
        send(&node, LOCAL, again).await.status,
        StatusCode::NOT_MODIFIED
    );
}

#[tokio::test]
async fn the_relay_and_nip11_stay_on_the_root() {
    let node = node();
    for peer in [LOCAL, REMOTE] {
        let request = Request::get("/")
            .header(header::ACCEPT, "application/nostr+json")
            .body(Body::empty())
            .unwrap();
        let answer = send(&node, peer, request).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/nostr+json"
        );
        assert_eq!(
            answer.json()["pubkey"],
            json!(node.owner.public_key().to_hex())
        );
    }
}

#[tokio::test]
async fn other_devices_need_a_login() {
    let node = node();
    let prefix = asset_prefix(&node).await;
    let login_page = send(&node, REMOTE, get("/")).await;
    assert_eq!(login_page.status, StatusCode::UNAUTHORIZED);
    assert!(
        login_page.text().contains("login.js"),
        "the login page: {}",
        login_page.text()
    );
    for path in [
        "/api/status".to_string(),
        "/api/me".into(),
        format!("{prefix}/app.js"),
        "/api/whereis/npub1x".into(),
    ] {
        let answer = send(&node, REMOTE, get(&path)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(answer.json()["error"].as_str().unwrap().contains("log in"));
    }
    let sign = send(
        &node,
        REMOTE,
        post_json("/api/sign", json!({"kind": 1, "content": "x"})),
    )
    .await;
    assert_eq!(sign.status, StatusCode::UNAUTHORIZED);
    // The login page's own files are open.
    for file in ["login.js", "style.css"] {
        assert_eq!(
            send(&node, REMOTE, get(&format!("{prefix}/{file}")))
                .await
                .status,
            StatusCode::OK
        );
    }
    // Loopback needs nothing, unless the Host is a foreign name (DNS rebinding).
    assert_eq!(
        send(&node, LOCAL, get("/api/status")).await.status,
        StatusCode::OK
    );
    let mut rebound = get("/api/status");
    rebound
        .headers_mut()
        .insert(header::HOST, "evil.example:7777".parse().unwrap());
    assert_eq!(
        send(&node, LOCAL, rebound).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_login_token_opens_a_session_until_logout() {
    let node = node();
    let wrong = send(
        &node,
        REMOTE,
        post_json("/api/login", json!({"token": "guess"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(!wrong.headers.contains_key(header::SET_COOKIE));

    let ok = send(
        &node,
        REMOTE,
        post_json("/api/login", json!({"token": LOGIN_TOKEN})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let cookie = session_of(&ok);
    assert!(cookie.starts_with(&format!("{SESSION_COOKIE}=")));
    assert_eq!(
        send(&node, REMOTE, with_cookie(get("/api/status"), &cookie))
            .await
            .status,
        StatusCode::OK
    );
    let page = send(&node, REMOTE, with_cookie(get("/"), &cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("app.js"));
    assert_eq!(
        send(
            &node,
            REMOTE,
            with_cookie(get("/api/status"), "starling_session=forged")
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let out = send(
        &node,
        REMOTE,
        with_cookie(post_json("/api/logout", json!({})), &cookie),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        send(&node, REMOTE, with_cookie(get("/api/status"), &cookie))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

fn login_event(keys: &Keys, challenge: &str) -> Event {
    EventBuilder::new(Kind::from_u16(22242), "")
        .tags([
            Tag::parse(["relay", "http://192.0.2.1:7777"]).unwrap(),
            Tag::parse(["challenge", challenge]).unwrap(),
        ])
        .finalize(keys)
        .unwrap()
}

#[tokio::test]
async fn a_signed_challenge_logs_the_owner_in_once() {
    let node = node_signing(Limits::default(), false);
    let challenge = send(&node, REMOTE, get("/api/login")).await.json()["challenge"]
        .as_str()
        .unwrap()
        .to_string();

    let stranger = login_event(&Keys::generate(), &challenge);
    let refused = send(
        &node,
        REMOTE,
        post_json("/api/login", json!({"event": stranger})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let unknown = login_event(&node.owner, "not-a-challenge-of-this-node");
    assert_eq!(
        send(
            &node,
            REMOTE,
            post_json("/api/login", json!({"event": unknown}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );

    let event = login_event(&node.owner, &challenge);
    let ok = send(
        &node,
        REMOTE,
        post_json("/api/login", json!({"event": event})),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let cookie = session_of(&ok);
    assert_eq!(
        send(&node, REMOTE, with_cookie(get("/api/me"), &cookie))
            .await
            .status,
        StatusCode::OK
    );

    let replay = send(
        &node,
        REMOTE,
        post_json("/api/login", json!({"event": event})),
    )
    .await;
    assert_eq!(
        replay.status,
        StatusCode::FORBIDDEN,
        "a challenge is good for one login"
    );
}

#[tokio::test]
async fn the_node_signs_only_with_the_owners_key() {
    let node = node();
    let me = send(&node, LOCAL, get("/api/me")).await.json();
    assert_eq!(me["node_signs"], json!(true));
    assert_eq!(me["hex"], json!(node.owner.public_key().to_hex()));

    let template = json!({"kind": 1, "content": "signed by the node", "tags": [["p", node.owner.public_key().to_hex()]], "created_at": 1_700_000_000});
    let answer = send(&node, LOCAL, post_json("/api/sign", template)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let event: Event = serde_json::from_slice(&answer.body).unwrap();
    event.verify().expect("a valid signature and id");
    assert_eq!(event.pubkey, node.owner.public_key());
    assert_eq!(event.content, "signed by the node");
    assert_eq!(event.created_at.as_secs(), 1_700_000_000);
    assert_eq!(
        event.tags.to_vec()[0].as_slice(),
        ["p", &node.owner.public_key().to_hex()]
    );
    assert_eq!(
        node.state.store.stats().await.unwrap().events,
        0,
        "signing stores nothing"
    );

    let bad = send(
        &node,
        LOCAL,
        post_json("/api/sign", json!({"kind": 1, "content": "", "tags": [[]]})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let mut foreign = post_json("/api/sign", json!({"kind": 1, "content": "csrf"}));
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(
        send(&node, LOCAL, foreign).await.status,
        StatusCode::FORBIDDEN
    );

    let npub_only = node_signing(Limits::default(), false);
    let me = send(&npub_only, LOCAL, get("/api/me")).await.json();
    assert_eq!(me["node_signs"], json!(false));
    let refused = send(
        &npub_only,
        LOCAL,
        post_json("/api/sign", json!({"kind": 1, "content": "x"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("install a NIP-07 signer"));
}

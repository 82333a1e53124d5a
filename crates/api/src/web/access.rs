//! Who may use the web client, the signing endpoint and the status routes.
//!
//! The rule: a request whose TCP peer is a loopback address, and whose `Host` is a
//! loopback name (absent, `localhost`, or a loopback or unspecified IP literal), comes from
//! the owner's own machine and needs no login. The `Host` check shuts out DNS rebinding: a
//! page of `evil.example` made to resolve to 127.0.0.1 reaches the node from loopback but
//! names its own host. A request that a reverse proxy forwarded (it carries `Forwarded`,
//! `X-Forwarded-For` or `X-Real-IP`) comes from elsewhere, even over loopback. Every other request must carry a session cookie, which
//! `POST /api/login` hands out to whoever proves to be the owner (the node's login token,
//! or a NIP-42-style challenge signed with the owner's key through NIP-07; see
//! [`super::login`]).
//!
//! Sessions live in memory (a restart logs other devices out), at most [`MAX_SESSIONS`],
//! each for [`SESSION_TTL`]; only their SHA-256 digests are kept. The WebSocket relay, NIP-11
//! and NostrP2P's REST routes stay open to anyone, as a relay's are: they accept only
//! events the owner signed.
//!
//! State-changing requests (`POST`) must also come from the node's own pages: a browser's
//! `Origin` must name the `Host` it talks to and `Sec-Fetch-Site` must not say another site.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::WebError;
use crate::ApiState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "starling_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most sessions held at once; a new one past it replaces the one that ends first.
pub const MAX_SESSIONS: usize = 32;
/// How long a login challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Most challenges outstanding at once.
pub const MAX_CHALLENGES: usize = 64;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The owner's own machine (loopback).
    Local,
    /// Another device with a valid session.
    LoggedIn,
    /// Another device without one.
    Stranger,
}

/// The login token's digest and the open sessions and challenges.
pub struct Access {
    token: Option<[u8; 32]>,
    /// Session digest → expiry. std Mutex: a tiny map, never held across an `.await`.
    sessions: Mutex<HashMap<[u8; 32], Instant>>,
    /// Challenge → expiry; same locking.
    challenges: Mutex<HashMap<String, Instant>>,
}

/// 32 random bytes from the OS, as hex: session ids, challenges and login tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl Access {
    /// `login_token`: the secret other devices may log in with (`None`: NIP-07 login only).
    pub fn new(login_token: Option<&str>) -> Self {
        Self {
            token: login_token.map(|t| digest(t.trim())),
            sessions: Mutex::new(HashMap::new()),
            challenges: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a login token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Classifies a request by its peer address and headers.
    pub fn caller(&self, peer: Option<SocketAddr>, headers: &HeaderMap, now: Instant) -> Caller {
        if is_local(peer, host(headers)) && !forwarded(headers) {
            return Caller::Local;
        }
        let valid = session_cookie(headers).is_some_and(|id| {
            let sessions = self.sessions.lock().expect("sessions lock");
            sessions.get(&digest(id)).is_some_and(|end| *end > now)
        });
        if valid {
            Caller::LoggedIn
        } else {
            Caller::Stranger
        }
    }

    /// Whether `given` is the login token (compared as digests, in constant time).
    pub fn token_matches(&self, given: &str) -> bool {
        let Some(token) = self.token else {
            return false;
        };
        let given = digest(given.trim());
        token
            .iter()
            .zip(given)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// A new challenge for a signed login.
    pub fn challenge(&self, now: Instant) -> String {
        let challenge = random_hex();
        let mut challenges = self.challenges.lock().expect("challenges lock");
        insert_bounded(
            &mut challenges,
            challenge.clone(),
            now + CHALLENGE_TTL,
            MAX_CHALLENGES,
            now,
        );
        challenge
    }

    /// Uses up `challenge`; whether it was outstanding and unexpired.
    pub fn redeem_challenge(&self, challenge: &str, now: Instant) -> bool {
        let mut challenges = self.challenges.lock().expect("challenges lock");
        challenges.remove(challenge).is_some_and(|end| end > now)
    }

    /// Opens a session; returns the cookie value.
    pub fn open_session(&self, now: Instant) -> String {
        let id = random_hex();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        insert_bounded(
            &mut sessions,
            digest(&id),
            now + SESSION_TTL,
            MAX_SESSIONS,
            now,
        );
        id
    }

    /// Ends the session named by the request's cookie, if any.
    pub fn close_session(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions
                .lock()
                .expect("sessions lock")
                .remove(&digest(id));
        }
    }
}

/// Inserts into a map of expiries, first dropping expired entries and, when still full,
/// the entry that ends first.
fn insert_bounded<K: Eq + std::hash::Hash + Clone>(
    map: &mut HashMap<K, Instant>,
    key: K,
    end: Instant,
    max: usize,
    now: Instant,
) {
    map.retain(|_, e| *e > now);
    if map.len() >= max {
        if let Some(first) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone()) {
            map.remove(&first);
        }
    }
    map.insert(key, end);
}

/// The request's `Host` header.
fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// Whether a reverse proxy forwarded the request for someone else.
fn forwarded(headers: &HeaderMap) -> bool {
    ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// The loopback rule (see the module docs).
pub fn is_local(peer: Option<SocketAddr>, host: Option<&str>) -> bool {
    let Some(peer) = peer else {
        return false;
    };
    peer.ip().to_canonical().is_loopback() && host.is_none_or(host_is_local)
}

/// Whether a `Host` value names this machine: `localhost` or a loopback or unspecified IP.
fn host_is_local(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// The session id in the request's cookies.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value that starts a session.
pub fn session_set_cookie(id: &str) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends one.
pub fn session_clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Refuses a state-changing request that a page of another origin sent.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> Result<(), WebError> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = fetch_site.filter(|s| !matches!(*s, "same-origin" | "none")) {
        return Err(WebError::CrossOrigin(format!("Sec-Fetch-Site: {site}")));
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        let named = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if named.is_none() || named != host(headers) {
            return Err(WebError::CrossOrigin(format!("Origin: {origin}")));
        }
    }
    Ok(())
}

/// The peer address axum's `serve` records on each request (absent in router tests that
/// do not set it: such a request counts as another device's).
pub fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Middleware for the routes only the owner may use.
pub async fn require_owner(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(e) = same_origin(request.method(), request.headers()) {
        return e.into_response();
    }
    let caller = state
        .web
        .access
        .caller(peer_of(&request), request.headers(), Instant::now());
    match caller {
        Caller::Local | Caller::LoggedIn => next.run(request).await,
        Caller::Stranger => WebError::LoginRequired.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn loopback_peers_with_loopback_hosts_are_local() {
        for host in [
            None,
            Some("127.0.0.1:7777"),
            Some("localhost:7777"),
            Some("[::1]:7777"),
            Some("0.0.0.0:7777"),
            Some("LOCALHOST"),
        ] {
            assert!(is_local(addr("127.0.0.1:5000"), host), "{host:?}");
            assert!(is_local(addr("[::1]:5000"), host), "{host:?}");
            assert!(is_local(addr("[::ffff:127.0.0.1]:5000"), host), "{host:?}");
        }
        // DNS rebinding: loopback peer, foreign host name.
        assert!(!is_local(addr("127.0.0.1:5000"), Some("evil.example:7777")));
        assert!(!is_local(
            addr("127.0.0.1:5000"),
            Some("localhost.evil.example")
        ));
        // Another device, whatever it names.
        assert!(!is_local(addr("10.1.2.3:5000"), Some("127.0.0.1:7777")));
        assert!(!is_local(addr("[fd00::1]:5000"), None));
        // No known peer: not local.
        assert!(!is_local(None, Some("127.0.0.1:7777")));
    }

    #[test]
    fn a_request_a_proxy_forwarded_is_not_local() {
        let access = Access::new(None);
        let now = Instant::now();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7777"));
        assert_eq!(
            access.caller(addr("127.0.0.1:5000"), &headers, now),
            Caller::Local
        );
        for name in ["forwarded", "x-forwarded-for", "x-real-ip"] {
            let mut proxied = headers.clone();
            proxied.insert(name, HeaderValue::from_static("203.0.113.7"));
            assert_eq!(
                access.caller(addr("127.0.0.1:5000"), &proxied, now),
                Caller::Stranger,
                "{name}"
            );
        }
    }

    #[test]
    fn sessions_and_challenges() {
        let access = Access::new(Some("secret-token\n"));
        let now = Instant::now();
        let remote = addr("10.0.0.2:4000");
        let mut headers = HeaderMap::new();
        assert_eq!(access.caller(remote, &headers, now), Caller::Stranger);
        let id = access.open_session(now);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {SESSION_COOKIE}={id}")).unwrap(),
        );
        assert_eq!(access.caller(remote, &headers, now), Caller::LoggedIn);
        assert_eq!(
            access.caller(remote, &headers, now + SESSION_TTL),
            Caller::Stranger
        );
        access.close_session(&headers);
        assert_eq!(access.caller(remote, &headers, now), Caller::Stranger);

        assert!(access.token_matches("secret-token"));
        assert!(!access.token_matches("secret-tokem"));
        assert!(!Access::new(None).token_matches(""));

        let challenge = access.challenge(now);
        assert!(!access.redeem_challenge("other", now));
        assert!(access.redeem_challenge(&challenge, now));
        assert!(
            !access.redeem_challenge(&challenge, now),
            "a challenge is used once"
        );
        let late = access.challenge(now);
        assert!(!access.redeem_challenge(&late, now + CHALLENGE_TTL));
    }

    #[test]
    fn sessions_are_bounded() {
        let access = Access::new(None);
        let now = Instant::now();
        let first = access.open_session(now);
        for i in 0..MAX_SESSIONS {
            access.open_session(now + Duration::from_secs(i as u64 + 1));
        }
        assert_eq!(access.sessions.lock().unwrap().len(), MAX_SESSIONS);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{SESSION_COOKIE}={first}")).unwrap(),
        );
        assert_eq!(
            access.caller(addr("10.0.0.2:1"), &headers, now),
            Caller::Stranger,
            "the oldest session made room"
        );
    }

    #[test]
    fn cross_origin_posts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:7777"));
        assert!(same_origin(&Method::POST, &headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7777"),
        );
        assert!(same_origin(&Method::POST, &headers).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(same_origin(&Method::POST, &headers).is_err());
        assert!(same_origin(&Method::GET, &headers).is_ok());
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&Method::POST, &headers).is_err());
    }
}

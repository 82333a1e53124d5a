//! The web client on the node's API port: the page a browser gets on `GET /` (the relay
//! handler in [`crate::relay`] passes plain GETs here), its files under `/app/VERSION/`
//! ([`assets`]), and the small JSON routes it needs beyond the relay and `/api/status`:
//! `GET /api/me` and `POST /api/sign` ([`sign`]), private messages `GET /api/dms` and
//! `POST /api/dm` ([`dm`]), login and logout ([`login`]).
//!
//! The page itself (plain ES modules, no dependencies, in `crates/api/web/`) talks to the
//! node like any Nostr client: REQ for the timeline, notifications and profiles, EVENT for
//! what the owner signs, over the node's WebSocket on `/`.
//!
//! Who may use all this is [`access`]'s rule: the owner's own machine freely, other
//! devices after logging in.

mod access;
mod assets;
mod dm;
mod error;
mod login;
mod sign;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use starling_proto::Keys;

pub use access::{random_hex, require_owner, Caller, SESSION_COOKIE};
pub use error::WebError;

use crate::ApiState;
use access::Access;
use assets::{Assets, Caching};

/// The web client's share of the API state.
pub struct WebState {
    assets: Assets,
    /// The owner's keys, when the node holds them: it then signs for the page.
    signer: Option<Keys>,
    access: Access,
}

impl WebState {
    /// `signer`: the owner's keys if the node holds them; `login_token`: the secret other
    /// devices may log in with (`None`: they can log in only by a NIP-07 signature).
    pub fn new(signer: Option<Keys>, login_token: Option<&str>) -> Self {
        Self {
            assets: Assets::new(),
            signer,
            access: Access::new(login_token),
        }
    }

    /// The version in the assets' paths.
    pub fn version(&self) -> &str {
        self.assets.version()
    }

    /// Classifies a request by its peer address and headers ([`access`]'s rule).
    pub fn caller(&self, peer: Option<SocketAddr>, headers: &HeaderMap, now: Instant) -> Caller {
        self.access.caller(peer, headers, now)
    }

    /// Whether `given` is the login token.
    pub fn token_matches(&self, given: &str) -> bool {
        self.access.token_matches(given)
    }
}

/// Whether a request that a browser may have sent comes from the node's own pages (its
/// `Origin`, if any, names the `Host`; `Sec-Fetch-Site`, if any, says the same origin).
pub fn from_own_origin(headers: &HeaderMap) -> bool {
    access::same_origin(&axum::http::Method::POST, headers).is_ok()
}

/// The web routes only the owner may use (wrapped in [`require_owner`] by the router).
pub fn owner_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/me", get(sign::me))
        .route("/api/sign", post(sign::sign))
        .route("/api/dm", post(dm::send))
        .route("/api/dms", get(dm::list))
}

/// The web routes anyone may reach: the files (which check access themselves: the login
/// page's are open) and login.
pub fn open_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/app/{version}/{file}", get(file))
        .route("/api/login", get(login::challenge).post(login::login))
        .route("/api/logout", post(login::logout))
}

/// The answer to a browser's `GET /`: the client for the owner, the login page (401) for
/// anyone else.
pub fn page(state: &ApiState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Response {
    let web = &state.web;
    match web.access.caller(peer, headers, Instant::now()) {
        Caller::Local | Caller::LoggedIn => web.assets.respond(
            &web.assets.index,
            StatusCode::OK,
            Caching::Revalidate,
            headers,
        ),
        Caller::Stranger => web.assets.respond(
            &web.assets.login,
            StatusCode::UNAUTHORIZED,
            Caching::Revalidate,
            headers,
        ),
    }
}

/// `GET /app/{version}/{file}`.
async fn file(
    State(state): State<Arc<ApiState>>,
    Path((version, name)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Response {
    let web = &state.web;
    let Some(file) = web.assets.file(&version, &name) else {
        return WebError::NotFound.into_response();
    };
    let caller = web
        .access
        .caller(access::peer_of(&request), request.headers(), Instant::now());
    if !file.open && caller == Caller::Stranger {
        return WebError::LoginRequired.into_response();
    }
    web.assets
        .respond(file, StatusCode::OK, Caching::Immutable, request.headers())
}

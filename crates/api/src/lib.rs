//! starling's client APIs, all on the node's one API port: the NIP-01 WebSocket relay with
//! its NIP-11 document on `/`, NostrP2P's REST routes `POST /publish` and `POST /req`,
//! `GET /api/status` for the CLI, Prometheus metrics on `GET /metrics`, and the web client
//! ([`web`]: the page on `/` for browsers, its files under `/app/`, signing and login). Events that clients send go to
//! the node core's [`Ingest`]; reads go to the store; live events come from the core's
//! [`EventBus`].
//!
//! The status routes and the web client's serve only the owner: requests from loopback,
//! or from other devices with a login session (see [`web`]'s access rule).
//!
//! The API listens on loopback unless configured otherwise. Exposed to other machines, it
//! is served over TLS ([`serve_tls`], [`tls`]) and takes writes from them only after they
//! authenticate ([`exposure`]).

pub mod decode;
pub mod exposure;
pub mod limiter;
mod metrics;
mod nip11;
mod relay;
mod rest;
mod status;
pub mod tls;
pub mod web;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{middleware, Router};
use starling_core::{EventBus, Ingest, Remote};
use starling_proto::{Filter, FromBech32, Limits, PublicKey};
use starling_store::EventStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use exposure::Exposure;
pub use limiter::{ConnSlot, Limiter, RateConfig};
pub use relay::{run_gated_session, run_session, WriteGate};
pub use status::NodeStatus;
pub use web::WebState;

/// Everything the API handlers share.
pub struct ApiState {
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub bus: EventBus,
    pub owner: PublicKey,
    pub limits: Limits,
    /// Shown in the NIP-11 document.
    pub name: String,
    pub started: Instant,
    /// Cancelled when the node shuts down; open WebSocket sessions end then.
    pub shutdown: CancellationToken,
    /// Open WebSocket connections.
    pub connections: AtomicUsize,
    /// Open `REQ` subscriptions, over all WebSocket connections.
    pub subscriptions: AtomicUsize,
    /// The peer-to-peer network, when the node runs one.
    pub remote: Option<Arc<dyn Remote>>,
    /// The web client: its files, signing key and login sessions.
    pub web: WebState,
    /// Rate limits and connection caps for clients.
    pub limiter: Arc<Limiter>,
    /// Whether other machines can reach the API (they must then authenticate to write).
    pub exposure: Exposure,
}

/// How long a query for authors the node has never seen waits for the network.
pub const FETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl ApiState {
    /// Before answering a query naming authors the node holds nothing of, asks the
    /// network for them (bounded by [`FETCH_WAIT`]); what arrives is stored and so part of
    /// the answer. For queries whose answer is read only afterwards (COUNT, NIP-77).
    pub async fn fetch_missing(&self, filters: &[Filter]) {
        self.fetch_absent(filters, HashSet::new).await;
    }

    /// Answers `filters` with `query`, then asks the network for the authors `filters` name
    /// that the answer lacks (`authors` gives the answer's authors) and the store holds
    /// nothing of, bounded by [`FETCH_WAIT`]; if anything arrived meanwhile (fetched, or by
    /// another path while the fetch ran), `query` runs again. An author the answer already
    /// shows is known, so the usual query is asked once.
    pub async fn query_fetching<T, E, Fut>(
        &self,
        filters: &[Filter],
        query: impl Fn() -> Fut,
        authors: impl FnOnce(&T) -> HashSet<PublicKey>,
    ) -> Result<T, E>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let answer = query().await?;
        if self.fetch_absent(filters, || authors(&answer)).await {
            return query().await;
        }
        Ok(answer)
    }

    /// Asks the network for the authors `filters` name that are not in `present` and the
    /// store holds nothing of. True when something may have been stored meanwhile.
    async fn fetch_absent(
        &self,
        filters: &[Filter],
        present: impl FnOnce() -> HashSet<PublicKey>,
    ) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let named: HashSet<PublicKey> = filters
            .iter()
            .filter_map(|f| f.authors.as_ref())
            .flatten()
            .copied()
            .collect();
        if named.is_empty() {
            return false;
        }
        let present = present();
        let absent: Vec<PublicKey> = named.difference(&present).copied().collect();
        if absent.is_empty() {
            return false;
        }
        // A fetch cut short by the wait may have stored some events already.
        !matches!(
            tokio::time::timeout(FETCH_WAIT, remote.fetch_missing(absent)).await,
            Ok(0)
        )
    }
}

/// A public key given as npub or hex (routes and forms take either).
pub(crate) fn parse_pubkey(text: &str) -> Option<PublicKey> {
    let text = text.trim();
    PublicKey::from_bech32(text)
        .or_else(|_| PublicKey::from_hex(text))
        .ok()
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let owner_only = Router::new()
        .route("/api/status", get(status::status))
        .route("/metrics", get(metrics::metrics))
        .route("/api/whereis/{npub}", get(status::whereis))
        .merge(web::owner_routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            web::require_owner,
        ));
    Router::new()
        .route("/", get(relay::root))
        .merge(rest::routes())
        .merge(owner_only)
        .merge(web::open_routes())
        .fallback(post(rest::not_found).get(rest::not_found))
        .with_state(state)
}

/// Serves the API on `listener` until `state.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // No Nagle: an answer written in several pieces (a REQ's events, then EOSE) must not
    // wait for the client's delayed ACK (up to 40 ms on Linux) before its last piece.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// As [`serve`], over TLS (https and wss).
pub async fn serve_tls(
    listener: TcpListener,
    tls: &tls::TlsSettings,
    state: Arc<ApiState>,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Tapping the connections also gives axum their peer addresses (`ConnectInfo`).
    let listener = tls::TlsListener::new(listener, tls)?.tap_io(|tls| {
        let _ = tls.get_ref().0.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

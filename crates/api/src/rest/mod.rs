//! NostrP2P's REST API, byte-compatible with its Flutter client (see
//! `shared/NOSTRP2P_COMPAT.md`): `POST /publish` takes a NIP-01 event as JSON, `POST /req`
//! takes a filter and answers with gzip-compressed msgpack. CORS is open to any origin, as
//! NostrP2P's was, including Chrome's private-network preflight. On an exposed node,
//! `POST /publish` from another machine needs the login token as a bearer token
//! ([`crate::exposure`]).

pub(crate) mod msgpack;
pub(crate) mod req;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;
use starling_core::{IngestError, Origin};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::debug;

use crate::ApiState;

/// An error answer: an HTTP status with `{"Error": "..."}`.
pub struct RestError(pub StatusCode, pub String);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "Error": self.1 }))).into_response()
    }
}

pub fn routes() -> Router<Arc<ApiState>> {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
        .allow_private_network(true)
        .max_age(Duration::from_secs(3600));
    let private_network = SetResponseHeaderLayer::overriding(
        HeaderName::from_static("access-control-allow-private-network"),
        HeaderValue::from_static("true"),
    );
    Router::new()
        .route("/publish", post(publish))
        .route("/req", post(req::req))
        .layer(cors)
        .layer(private_network)
}

/// The client's address, when the server was started with connection info.
pub(crate) fn peer_ip(peer: &Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// A rate limit's refusal as `429 Too Many Requests`.
fn rate_limit(verdict: Result<(), &'static str>) -> Result<(), RestError> {
    verdict.map_err(|reason| RestError(StatusCode::TOO_MANY_REQUESTS, reason.into()))
}

pub async fn not_found() -> RestError {
    RestError(StatusCode::NOT_FOUND, "no such route".into())
}

/// Refuses a body that is not declared as JSON (NostrP2P answered 415).
fn require_json(headers: &HeaderMap) -> Result<(), RestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        Ok(())
    } else {
        Err(RestError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        ))
    }
}

/// A `/publish` body as the event's JSON text, which the ingest path validates.
pub fn publish_text(body: &[u8]) -> Result<&str, RestError> {
    std::str::from_utf8(body)
        .map_err(|_| RestError(StatusCode::BAD_REQUEST, "the body is not UTF-8".into()))
}

async fn publish(
    State(state): State<Arc<ApiState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, RestError> {
    rate_limit(state.limiter.http_events(peer_ip(&peer), 1))?;
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    if !crate::exposure::rest_write_allowed(&state, peer, &headers) {
        return Err(RestError(
            StatusCode::UNAUTHORIZED,
            crate::exposure::REST_AUTH_REQUIRED.into(),
        ));
    }
    require_json(&headers)?;
    let text = publish_text(&body)?;
    match state.ingest.submit_json(text, Origin::LocalClient).await {
        Ok(_) => Ok(Json(json!({ "Status": "SUCCESS" }))),
        Err(e) => {
            debug!(error = %e, "REST publish refused");
            let status = match e {
                IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
                IngestError::Blocked(_) | IngestError::Deleted => StatusCode::FORBIDDEN,
                IngestError::AuthRequired(_) => StatusCode::UNAUTHORIZED,
                IngestError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                IngestError::Superseded => StatusCode::CONFLICT,
                IngestError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
                IngestError::Store(_) | IngestError::Delivery(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            Err(RestError(status, e.to_string()))
        }
    }
}

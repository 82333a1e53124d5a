//! `GET /api/status`: the node's figures as JSON, for `starling status` and scripts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use starling_proto::ToBech32;

use crate::ApiState;

/// What `GET /api/status` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub version: String,
    pub owner_npub: String,
    pub owner_hex: String,
    pub uptime_secs: u64,
    pub events: u64,
    pub event_bytes: u64,
    pub connections: usize,
    /// The peer-to-peer network's figures; absent when the node runs without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<serde_json::Value>,
}

pub async fn status(
    State(state): State<Arc<ApiState>>,
) -> Result<Json<NodeStatus>, (StatusCode, String)> {
    let stats = state
        .store
        .stats()
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let network = match &state.remote {
        Some(remote) => Some(remote.status().await),
        None => None,
    };
    Ok(Json(NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        owner_npub: state.owner.to_bech32().unwrap_or_default(),
        owner_hex: state.owner.to_hex(),
        uptime_secs: state.started.elapsed().as_secs(),
        events: stats.events,
        event_bytes: stats.event_bytes,
        connections: state.connections.load(Ordering::Relaxed),
        network,
    }))
}

/// `GET /api/whereis/{npub}`: the home record of a user (npub or hex), looked up in the
/// DHT. 404 when none is found, 503 without a network.
pub async fn whereis(
    State(state): State<Arc<ApiState>>,
    Path(who): Path<String>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let author = crate::parse_pubkey(&who).ok_or_else(|| {
        (
            StatusCode::BAD_REQUEST,
            format!("{who:?} is not an npub or hex public key"),
        )
    })?;
    let remote = state.remote.as_ref().ok_or((
        StatusCode::SERVICE_UNAVAILABLE,
        "this node runs without the peer-to-peer network".to_string(),
    ))?;
    match remote.whereis(author).await {
        Ok(Some(record)) => Ok(Json(record)),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            format!("no home record found for {who}"),
        )),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e)),
    }
}

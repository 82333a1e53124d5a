//! `GET /api/status`: the node's figures as JSON, for `starling status` and scripts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
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
}

pub async fn status(
    State(state): State<Arc<ApiState>>,
) -> Result<Json<NodeStatus>, (StatusCode, String)> {
    let stats = state
        .store
        .stats()
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        owner_npub: state.owner.to_bech32().unwrap_or_default(),
        owner_hex: state.owner.to_hex(),
        uptime_secs: state.started.elapsed().as_secs(),
        events: stats.events,
        event_bytes: stats.event_bytes,
        connections: state.connections.load(Ordering::Relaxed),
    }))
}

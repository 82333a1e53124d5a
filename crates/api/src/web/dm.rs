//! Private messages for the web client (NIP-17). A browser has no secp256k1 for NIP-44,
//! so the node, when it holds the owner's key, seals and opens the messages for the page:
//! `POST /api/dm` makes the gift wraps of a message, stores them and queues them for
//! delivery (exactly as the relay does for an authenticated owner's client), and
//! `GET /api/dms` returns the messages in the wraps addressed to the owner. Plaintext only
//! ever travels between the node and the owner's page (owner-only routes).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use starling_core::Origin;
use starling_proto::{dm, Filter, Kind, PublicKey};

use super::error::WebError;
use crate::ApiState;

/// Gift wraps opened at most for one answer.
const MAX_WRAPS: usize = 5_000;

/// A message as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outgoing {
    /// Recipients, npub or hex.
    to: Vec<String>,
    text: String,
}

fn parse_key(text: &str) -> Result<PublicKey, WebError> {
    crate::parse_pubkey(text)
        .ok_or_else(|| WebError::BadTemplate(format!("{text:?} is not an npub or hex key")))
}

/// `POST /api/dm`: seals and sends a message; answers its id.
pub async fn send(
    State(state): State<Arc<ApiState>>,
    Json(out): Json<Outgoing>,
) -> Result<Json<Value>, WebError> {
    let keys = state.web.signer.as_ref().ok_or(WebError::NoSigner)?;
    let to = out
        .to
        .iter()
        .map(|t| parse_key(t))
        .collect::<Result<Vec<_>, _>>()?;
    let (id, wraps) =
        dm::wraps_for(keys, &to, &out.text).map_err(|e| WebError::BadTemplate(e.to_string()))?;
    for wrap in &wraps {
        state
            .ingest
            .submit(wrap.clone(), Origin::OwnerSession)
            .await
            .map_err(|e| WebError::Delivery(e.to_string()))?;
        if let Some(remote) = &state.remote {
            remote
                .send_private(wrap, &wrap.as_json())
                .await
                .map_err(WebError::Delivery)?;
        }
    }
    Ok(Json(json!({ "id": id, "wraps": wraps.len() })))
}

/// `GET /api/dms`: every message in the gift wraps addressed to the owner, oldest first.
pub async fn list(State(state): State<Arc<ApiState>>) -> Result<Json<Value>, WebError> {
    let keys = state.web.signer.as_ref().ok_or(WebError::NoSigner)?;
    let filter = Filter::new()
        .kind(Kind::GiftWrap)
        .pubkey(keys.public_key())
        .limit(MAX_WRAPS);
    let wraps = state
        .store
        .query(vec![filter])
        .await
        .map_err(|e| WebError::Delivery(e.to_string()))?;
    let (messages, unreadable) = dm::open_all(keys, &wraps);
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "from": m.sender.to_hex(),
                "participants": m.participants.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
                "created_at": m.created_at.as_secs(),
                "text": m.text,
            })
        })
        .collect();
    Ok(Json(
        json!({ "messages": messages, "unreadable": unreadable }),
    ))
}

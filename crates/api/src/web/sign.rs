//! Signing for the web client, and what the page needs to know about the node's owner.
//!
//! `POST /api/sign` takes an unsigned event template `{kind, content, tags, created_at?}`
//! and returns it signed with the owner's key: only when the node holds that key (else 409
//! and a message the page shows). It stores nothing: the page publishes the signed event
//! over the node's WebSocket like any client, so web, CLI and third-party clients share one
//! write path (validation, write rule, `OK` answers), and a NIP-07 signer in the browser
//! slots in for this endpoint without changing anything else.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use starling_proto::{Event, EventBuilder, FinalizeEvent, Kind, Tag, Timestamp, ToBech32};

use super::error::WebError;
use crate::ApiState;

/// An unsigned event as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    kind: u16,
    content: String,
    #[serde(default)]
    tags: Vec<Vec<String>>,
    /// Now when absent.
    #[serde(default)]
    created_at: Option<u64>,
}

/// `GET /api/me`: the owner's keys and whether the node signs for the page.
pub async fn me(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!({
        "npub": state.owner.to_bech32().unwrap_or_default(),
        "hex": state.owner.to_hex(),
        "node_signs": state.web.signer.is_some(),
    }))
}

/// `POST /api/sign`.
pub async fn sign(
    State(state): State<Arc<ApiState>>,
    Json(template): Json<Template>,
) -> Result<Json<Event>, WebError> {
    let keys = state.web.signer.as_ref().ok_or(WebError::NoSigner)?;
    let limits = &state.limits;
    if template.content.len() > limits.max_event_bytes {
        return Err(WebError::BadTemplate(format!(
            "content is {} bytes, the limit is {}",
            template.content.len(),
            limits.max_event_bytes
        )));
    }
    if template.tags.len() > limits.max_tags {
        return Err(WebError::BadTemplate(format!(
            "{} tags, the limit is {}",
            template.tags.len(),
            limits.max_tags
        )));
    }
    let tags = template
        .tags
        .into_iter()
        .map(Tag::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebError::BadTemplate(e.to_string()))?;
    let mut builder = EventBuilder::new(Kind::from_u16(template.kind), template.content).tags(tags);
    if let Some(at) = template.created_at {
        builder = builder.custom_created_at(Timestamp::from_secs(at));
    }
    builder
        .finalize(keys)
        .map(Json)
        .map_err(|e| WebError::Signing(e.to_string()))
}

//! The NIP-11 relay information document, served on `/` to requests that accept
//! `application/nostr+json`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use starling_proto::Limits;

use crate::ApiState;

/// The NIPs this relay implements.
const SUPPORTED_NIPS: [u16; 7] = [1, 9, 11, 40, 42, 45, 77];

pub fn document(state: &ApiState) -> Response {
    let Limits {
        max_event_bytes,
        max_tags,
        max_message_bytes,
        max_filters,
        max_subscriptions,
        max_subid_chars,
        max_limit,
        max_future_secs,
        ..
    } = state.limits;
    let body = json!({
        "name": state.name,
        "description": "A starling node: its owner's own relay in the starling peer-to-peer network.",
        "pubkey": state.owner.to_hex(),
        "software": "starling",
        "version": env!("CARGO_PKG_VERSION"),
        "supported_nips": SUPPORTED_NIPS,
        "limitation": {
            "max_message_length": max_message_bytes,
            "max_subscriptions": max_subscriptions,
            "max_filters": max_filters,
            "max_limit": max_limit,
            "max_subid_length": max_subid_chars,
            "max_event_tags": max_tags,
            "max_content_length": max_event_bytes,
            "auth_required": false,
            "payment_required": false,
            "restricted_writes": true,
            "created_at_upper_limit": max_future_secs,
        },
    });
    (
        [
            (header::CONTENT_TYPE, "application/nostr+json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        body.to_string(),
    )
        .into_response()
}

//! Logging in from another device (see [`super::access`] for when that is needed):
//!
//! - `GET /api/login` hands out a one-time challenge (valid [`super::access::CHALLENGE_TTL`]);
//! - `POST /api/login` takes `{"token": "..."}`, the node's login token (the file
//!   `web.token` in its data directory), or `{"event": {...}}`, a NIP-42-style event
//!   (kind 22242, a `challenge` tag with the challenge) signed with the owner's key, e.g.
//!   by a NIP-07 browser extension; either opens a session and sets its cookie;
//! - `POST /api/logout` ends the session.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use starling_proto::{Event, Kind, Timestamp, ToBech32};

use super::access::{session_clear_cookie, session_set_cookie};
use super::error::WebError;
use crate::ApiState;

/// The kind of a signed login: NIP-42's client authentication event.
pub const LOGIN_KIND: u16 = 22242;
/// How far a signed login's `created_at` may be from the node's clock, in seconds.
pub const MAX_CLOCK_SKEW: u64 = 600;

/// What `POST /api/login` takes: one of the two proofs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    event: Option<Event>,
}

/// `GET /api/login`: a fresh challenge, and what the login page needs to know.
pub async fn challenge(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let challenge = state.web.access.challenge(Instant::now());
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "challenge": challenge,
            "kind": LOGIN_KIND,
            "owner_npub": state.owner.to_bech32().unwrap_or_default(),
            "token_login": state.web.access.has_token(),
        })),
    )
}

/// `POST /api/login`.
pub async fn login(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<LoginRequest>,
) -> Result<Response, WebError> {
    let now = Instant::now();
    match (&request.token, &request.event) {
        (Some(token), None) => {
            if !state.web.access.has_token() {
                return Err(WebError::LoginRefused("this node has no login token"));
            }
            if !state.web.access.token_matches(token) {
                return Err(WebError::LoginRefused("wrong login token"));
            }
        }
        (None, Some(event)) => check_signed_login(&state, event, now)?,
        _ => {
            return Err(WebError::LoginRefused(
                "send either a token or a signed event",
            ))
        }
    }
    let id = state.web.access.open_session(now);
    Ok((
        [(header::SET_COOKIE, session_set_cookie(&id))],
        Json(json!({ "ok": true })),
    )
        .into_response())
}

/// Checks a signed login: the owner's valid signature on a fresh kind-22242 event naming
/// an outstanding challenge (which it uses up).
fn check_signed_login(state: &ApiState, event: &Event, now: Instant) -> Result<(), WebError> {
    if event.kind != Kind::from_u16(LOGIN_KIND) {
        return Err(WebError::LoginRefused(
            "the login event must be of kind 22242",
        ));
    }
    if event.pubkey != state.owner {
        return Err(WebError::LoginRefused(
            "the login event is not signed by this node's owner",
        ));
    }
    let age = Timestamp::now()
        .as_secs()
        .abs_diff(event.created_at.as_secs());
    if age > MAX_CLOCK_SKEW {
        return Err(WebError::LoginRefused(
            "the login event's created_at is not now",
        ));
    }
    if event.verify().is_err() {
        return Err(WebError::LoginRefused(
            "the login event's id or signature is wrong",
        ));
    }
    let challenge = event
        .tags
        .iter()
        .map(|t| t.as_slice())
        .find(|t| t.first().map(String::as_str) == Some("challenge"))
        .and_then(|t| t.get(1))
        .ok_or(WebError::LoginRefused(
            "the login event has no challenge tag",
        ))?;
    if !state.web.access.redeem_challenge(challenge, now) {
        return Err(WebError::LoginRefused("unknown or expired challenge"));
    }
    Ok(())
}

/// `POST /api/logout`.
pub async fn logout(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    state.web.access.close_session(&headers);
    (
        [(header::SET_COOKIE, session_clear_cookie())],
        Json(json!({ "ok": true })),
    )
        .into_response()
}

//! `POST /req`: NostrP2P's query route. The filter's `kinds` picks the question: `40000`
//! the owner's home timeline (own events, followed authors' events, events mentioning the
//! owner), `1` one post, `0` a profile, `3` a follow list; anything else gets an empty list.
//! `since`/`until` of 0 or -1 mean no bound, `limit` -1 means no limit (capped at the
//! relay's `max_limit`). Answers are oldest first.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use starling_proto::{Event, EventId, Filter, Kind, Limits, PublicKey, Timestamp};

use super::{msgpack, peer_ip, rate_limit, require_json, RestError};
use crate::ApiState;

/// NostrP2P's pseudo-kind asking for the home timeline.
const KIND_TIMELINE: i64 = 40000;

/// The filter as NostrP2P's client sends it (numbers may be -1).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RestFilter {
    ids: Vec<String>,
    authors: Vec<String>,
    kinds: Vec<i64>,
    since: Option<f64>,
    until: Option<f64>,
    limit: Option<f64>,
}

fn bad(msg: impl Into<String>) -> RestError {
    RestError(StatusCode::BAD_REQUEST, msg.into())
}

/// A positive bound as a timestamp; 0, -1 and absent mean none.
fn bound(value: Option<f64>) -> Option<Timestamp> {
    value
        .filter(|v| *v > 0.0)
        .map(|v| Timestamp::from_secs(v as u64))
}

fn first_author(f: &RestFilter) -> Result<PublicKey, RestError> {
    let hex = f
        .authors
        .first()
        .ok_or_else(|| bad("authors[0] is required"))?;
    PublicKey::from_hex(hex).map_err(|_| bad(format!("bad author {hex:?}")))
}

/// What a `/req` body asks for, decided from the body alone (before any store read).
#[derive(Debug, Clone, PartialEq)]
pub enum RestQuery {
    /// The owner's home timeline within `window` (its `since`, `until` and `limit`, the
    /// limit already capped at the relay's `max_limit`).
    Timeline { window: Filter, limit: usize },
    /// Stored events matching `filters`, after asking the network for unknown authors.
    Stored(Vec<Filter>),
    /// A kind this route does not answer: an empty list.
    Nothing,
}

/// Decodes a `/req` body (NostrP2P's filter as JSON) into the query it asks for.
pub fn parse_req(body: &[u8], limits: &Limits) -> Result<RestQuery, RestError> {
    let filter: RestFilter =
        serde_json::from_slice(body).map_err(|e| bad(format!("bad filter: {e}")))?;
    Ok(match filter.kinds.first().copied() {
        _ if filter.kinds.contains(&KIND_TIMELINE) => {
            let (window, limit) = timeline_window(&filter, limits);
            RestQuery::Timeline { window, limit }
        }
        Some(1) => {
            let hex = filter
                .ids
                .first()
                .ok_or_else(|| bad("ids[0] is required"))?;
            let id = EventId::from_hex(hex).map_err(|_| bad(format!("bad id {hex:?}")))?;
            let mut f = Filter::new().id(id).kind(Kind::TextNote);
            if !filter.authors.is_empty() {
                f = f.author(first_author(&filter)?);
            }
            RestQuery::Stored(vec![f])
        }
        Some(kind @ (0 | 3)) => {
            let author = first_author(&filter)?;
            let f = Filter::new()
                .author(author)
                .kind(Kind::from_u16(kind as u16))
                .limit(1);
            RestQuery::Stored(vec![f])
        }
        _ => RestQuery::Nothing,
    })
}

pub async fn req(
    State(state): State<Arc<ApiState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    rate_limit(state.limiter.http_req(peer_ip(&peer)))?;
    require_json(&headers)?;
    let mut events = match parse_req(&body, &state.limits)? {
        RestQuery::Timeline { window, limit } => timeline(&state, window, limit).await?,
        RestQuery::Stored(filters) => query(&state, filters).await?,
        RestQuery::Nothing => Vec::new(),
    };
    events.reverse();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
        msgpack::encode(&events),
    )
        .into_response())
}

/// Stored events; named authors the answer lacks and the node never saw are fetched, then
/// the store is asked again (see [`ApiState::query_fetching`]).
async fn query(state: &ApiState, filters: Vec<Filter>) -> Result<Vec<Event>, RestError> {
    let query = || stored(state, filters.clone());
    let authors = |events: &Vec<Event>| events.iter().map(|e| e.pubkey).collect();
    state.query_fetching(&filters, query, authors).await
}

/// Stored events only.
async fn stored(state: &ApiState, filters: Vec<Filter>) -> Result<Vec<Event>, RestError> {
    state
        .store
        .query(filters)
        .await
        .map_err(|e| RestError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The timeline's time window and limit from NostrP2P's filter.
fn timeline_window(f: &RestFilter, limits: &Limits) -> (Filter, usize) {
    let mut window = Filter::new();
    if let Some(since) = bound(f.since) {
        window = window.since(since);
    }
    if let Some(until) = bound(f.until) {
        window = window.until(until);
    }
    let limit = f
        .limit
        .filter(|l| *l >= 0.0)
        .map_or(limits.max_limit, |l| (l as usize).min(limits.max_limit));
    (window.limit(limit), limit)
}

/// The owner's home timeline within `window`, newest first.
async fn timeline(state: &ApiState, window: Filter, limit: usize) -> Result<Vec<Event>, RestError> {
    let follows = stored(
        state,
        vec![Filter::new()
            .author(state.owner)
            .kind(Kind::ContactList)
            .limit(1)],
    )
    .await?;
    let mut authors: Vec<PublicKey> = follows
        .first()
        .map(|e| e.tags.public_keys().collect())
        .unwrap_or_default();
    authors.push(state.owner);
    let by_authors = window.clone().authors(authors);
    let mentions = window.pubkey(state.owner);
    let mut events = stored(state, vec![by_authors, mentions]).await?;
    events.truncate(limit);
    Ok(events)
}

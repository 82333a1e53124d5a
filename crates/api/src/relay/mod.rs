//! The NIP-01 relay endpoint on `/`: WebSocket upgrades become [`session`]s; plain GETs get
//! the NIP-11 document (when they accept `application/nostr+json`) or the web client's page
//! ([`crate::web::page`]).
//! Sessions speak NIP-01, NIP-45 COUNT and NIP-77 negentropy sync ([`negentropy`]).
//! A connection from another machine to an exposed node must authenticate before it may
//! publish ([`remote`]).

mod auth;
pub(crate) mod neg_message;
pub(crate) mod negentropy;
mod remote;
mod session;
mod submissions;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use tracing::debug;

use crate::limiter::ConnSlot;
use crate::{nip11, ApiState};

pub use remote::WriteGate;
pub use session::{run_gated_session, run_session};

pub async fn root(
    State(state): State<Arc<ApiState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr);
    let ip = peer.map(|addr| addr.ip());
    if let Ok(ws) = ws {
        let slot = match state.limiter.admit(ip) {
            Ok(slot) => slot,
            Err(reason) => {
                debug!(?ip, %reason, "connection refused");
                return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
            }
        };
        let max = state.limits.max_message_bytes;
        let gate = WriteGate::for_connection(&state, peer, &headers);
        return ws
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| serve_socket(socket, state, slot, gate));
    }
    let wants_nip11 = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/nostr+json"));
    if wants_nip11 {
        return nip11::document(&state);
    }
    crate::web::page(&state, peer, &headers)
}

/// Adapts an axum WebSocket to the text streams a session works on.
async fn serve_socket(socket: WebSocket, state: Arc<ApiState>, slot: ConnSlot, gate: WriteGate) {
    let (sink, stream) = socket.split();
    let incoming = stream
        .take_while(|m| {
            std::future::ready(matches!(m, Ok(msg) if !matches!(msg, Message::Close(_))))
        })
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().to_owned()),
                Ok(Message::Binary(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            })
        });
    let outgoing = sink
        .with(|text: String| std::future::ready(Ok::<_, axum::Error>(Message::Text(text.into()))));
    run_gated_session(Box::pin(incoming), Box::pin(outgoing), state, slot, gate).await;
}

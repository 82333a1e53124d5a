//! The web client's errors: one enum for the page, login and signing routes, turned into
//! an HTTP status with a JSON body `{"error": "..."}` at one place ([`IntoResponse`]) that
//! the page shows as it is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::debug;

/// Why a web-client request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A request from another device without a session.
    #[error("log in first: this node serves other devices only to its owner")]
    LoginRequired,
    /// A login that did not prove to be the owner.
    #[error("login refused: {0}")]
    LoginRefused(&'static str),
    /// A state-changing request sent by a page of another origin.
    #[error("refused: the request comes from another site ({0})")]
    CrossOrigin(String),
    /// `/api/sign` on a node without the owner's secret key.
    #[error(
        "this node holds only your npub: install a NIP-07 signer (a browser extension) to sign"
    )]
    NoSigner,
    /// An event template that cannot be signed.
    #[error("invalid event template: {0}")]
    BadTemplate(String),
    /// Signing itself failed.
    /// Signing itself failed (the `nostr` crate's message).
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("no such file")]
    NotFound,
    /// A private message that could not be stored or queued.
    #[error("the message could not be sent: {0}")]
    Delivery(String),
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::UNAUTHORIZED,
            Self::LoginRefused(_) | Self::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Self::NoSigner => StatusCode::CONFLICT,
            Self::BadTemplate(_) => StatusCode::BAD_REQUEST,
            Self::Signing(_) | Self::Delivery(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        debug!(%status, error = %self, "web request refused");
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

//! The relay's write gate for connections from other machines (see [`crate::exposure`]):
//! decided once, when the WebSocket is upgraded, from the peer address and the upgrade
//! request's headers, then asked by the session before each EVENT.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use starling_core::IngestError;

use crate::exposure;
use crate::web::Caller;
use crate::ApiState;

/// What a connection must do before its EVENTs are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteGate {
    /// The owner's own client (loopback, or the node's web client logged in): EVENTs go
    /// straight to the ingest path, whose write rule takes only the owner's events.
    Open,
    /// Another machine: EVENTs only after NIP-42 AUTH as the owner.
    OwnerAuth,
}

/// The `OK false` message for an EVENT refused by [`WriteGate::OwnerAuth`] (after the
/// `auth-required: ` prefix that [`IngestError`] adds).
pub const NEEDS_OWNER_AUTH: &str = "this node is reached from another machine: \
     authenticate (NIP-42) as its owner to publish";

impl WriteGate {
    /// The gate for a connection from `peer` whose upgrade request carried `headers`.
    pub fn for_connection(state: &ApiState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Self {
        match exposure::caller(state, peer, headers) {
            Caller::Local | Caller::LoggedIn => WriteGate::Open,
            Caller::Stranger => WriteGate::OwnerAuth,
        }
    }

    /// The `OK` message for an AUTH that proved another key than the owner's.
    pub fn not_the_owner(self) -> &'static str {
        match self {
            WriteGate::Open => {
                "authenticated, but not as this node's owner: gift wraps stay hidden"
            }
            WriteGate::OwnerAuth => {
                "authenticated, but not as this node's owner: gift wraps stay hidden, \
                 and this node takes no events from this connection"
            }
        }
    }

    /// Whether an EVENT may go on to the ingest path; `owner_authed`: the connection
    /// authenticated as the owner.
    pub fn admit(self, owner_authed: bool) -> Result<(), IngestError> {
        match self {
            WriteGate::OwnerAuth if !owner_authed => {
                Err(IngestError::AuthRequired(NEEDS_OWNER_AUTH.into()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_owner_session_passes_the_remote_gate() {
        assert!(WriteGate::Open.admit(false).is_ok());
        assert!(WriteGate::Open.admit(true).is_ok());
        assert!(WriteGate::OwnerAuth.admit(true).is_ok());
        let refused = WriteGate::OwnerAuth.admit(false).unwrap_err();
        assert!(
            refused.to_string().starts_with("auth-required: "),
            "{refused}"
        );
    }
}

//! Who may write through the API when it is exposed to other machines (issue 7, point 4).
//!
//! A node whose API listens on loopback ([`Exposure::Loopback`], the default) behaves as it
//! always did: every client is the owner's own, and may publish events the owner signed
//! without NIP-42 AUTH. A node whose API listens on another address, or sits behind a
//! reverse proxy ([`Exposure::Exposed`]), tells its own machine's clients from others by
//! [`crate::web`]'s loopback rule (a loopback peer, a loopback `Host`, and no proxy's
//! forwarding headers), and holds the others to more:
//!
//! * the relay ([`crate::relay`]): a connection takes EVENTs only after it authenticated as
//!   the owner with NIP-42 (until then each gets `OK false auth-required: ...` and the AUTH
//!   challenge); a browser page of the node's own web client that logged in (its session
//!   cookie, from the same origin) counts as the owner's. Public reads stay open, as on any
//!   relay; gift wraps need AUTH as everywhere.
//! * NostrP2P's REST `POST /publish`: only with `Authorization: Bearer <token>`, the login
//!   token in the data directory's `web.token` (a cookie is not enough: the REST routes
//!   answer any origin, so a cookie would let other sites publish). `POST /req` (public
//!   reads) stays open.
//!
//! The transport (TLS, or plain text behind a TLS-terminating proxy) is the binary's
//! choice; see [`crate::tls`].

use std::net::SocketAddr;
use std::time::Instant;

use axum::http::{header, HeaderMap};

use crate::web::Caller;
use crate::ApiState;

/// Whether clients of other machines can reach the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exposure {
    /// The API listens on loopback only: every client is the owner's.
    #[default]
    Loopback,
    /// Other machines can reach the API: they must authenticate to write.
    Exposed,
}

/// Who is asking, for the write rules above: on a loopback-only API always
/// [`Caller::Local`]; else the web client's classification, where a session cookie counts
/// only on a request from the node's own origin.
pub fn caller(state: &ApiState, peer: Option<SocketAddr>, headers: &HeaderMap) -> Caller {
    match state.exposure {
        Exposure::Loopback => Caller::Local,
        Exposure::Exposed => match state.web.caller(peer, headers, Instant::now()) {
            Caller::LoggedIn if !crate::web::from_own_origin(headers) => Caller::Stranger,
            caller => caller,
        },
    }
}

/// The refusal of a REST write from another machine without the token.
pub const REST_AUTH_REQUIRED: &str = "auth-required: this node is reached from another \
     machine: send its login token (the data directory's web.token) as `Authorization: Bearer TOKEN` to publish";

/// Whether a REST write may go ahead: from the owner's machine, or with the login token as
/// a bearer token.
pub fn rest_write_allowed(state: &ApiState, peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    if caller(state, peer, headers) == Caller::Local {
        return true;
    }
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .any(|token| state.web.token_matches(token))
}

//! starling's own peer-to-peer messages, carried by libp2p request-response with a CBOR
//! codec on the protocol [`PROTOCOL`].
//!
//! Every message is an envelope with a version number, so a later starling can tell an
//! older peer what it does not understand instead of failing silently. Events travel as
//! their NIP-01 JSON text: the receiver validates id and signature from exactly the bytes
//! the author signed, never from a re-encoding. Sizes are bounded twice: by the codec
//! (a whole message) and by [`WireLimits`] (how many items one message may carry), and
//! decoding a hostile message yields an error, never a panic.

use serde::{Deserialize, Serialize};

pub mod codec;
pub use codec::{decode_request, decode_response, Inbound, StarlingCodec};

/// The request-response protocol name.
pub const PROTOCOL: &str = "/starling/req/1";

/// The wire version this build speaks.
pub const VERSION: u16 = 1;

/// Largest request and response, in bytes, accepted by the codec.
pub const MAX_MESSAGE_BYTES: u64 = 4 * 1024 * 1024;

/// Item counts one message may carry.
#[derive(Debug, Clone, Copy)]
pub struct WireLimits {
    /// Events in one push or one answer.
    pub events: usize,
    /// Authors in one subscription, filters in one fetch.
    pub items: usize,
}

impl Default for WireLimits {
    fn default() -> Self {
        Self {
            events: 500,
            items: 64,
        }
    }
}

/// A request from one node to another.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub v: u16,
    pub body: RequestBody,
}

/// What a request asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum RequestBody {
    /// New events for the receiver: posts of authors it follows, or replies, mentions and
    /// reactions addressed to its owner. Each event is its JSON text.
    Push { events: Vec<String> },
    /// "Push me new events of these authors, and send what you have since `since`."
    /// Hex public keys; the lease lasts `lease_secs` unless renewed; `addrs` are where the
    /// subscriber can be dialled for pushes.
    Subscribe {
        authors: Vec<String>,
        since: u64,
        lease_secs: u32,
        addrs: Vec<String>,
    },
    /// "Stop pushing these authors to me."
    Unsubscribe { authors: Vec<String> },
    /// Stored events matching NIP-01 filters (each filter its JSON text), newest first.
    Fetch { filters: Vec<String>, limit: u32 },
    /// "I no longer serve these authors (I left their home set): subscribe elsewhere."
    /// Sent by a former home-set member to the followers subscribed there.
    Moved { authors: Vec<String> },
    /// One round of set reconciliation (negentropy) over the receiver's events matching
    /// `filter` (its JSON text): the answer is `Reconciled`. Stateless at the receiver.
    Reconcile {
        filter: String,
        message: serde_bytes::ByteBuf,
    },
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub v: u16,
    pub body: ResponseBody,
}

/// What an answer carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ResponseBody {
    /// One entry per pushed event, in order: `None` if accepted (stored or already held),
    /// else the reason it was refused.
    Ack { results: Vec<Option<String>> },
    /// Events answering a subscription's catch-up or a fetch, oldest first, and whether
    /// more were left out because of the limit.
    Events { events: Vec<String>, more: bool },
    /// The subscription was taken; events since the asked time follow in `Events` form,
    /// then the author's home set as the answering node sees it (closest first; empty
    /// from nodes that predate the field), so the subscriber knows where else to go.
    Subscribed {
        events: Vec<String>,
        more: bool,
        #[serde(default)]
        members: Vec<WireMember>,
    },
    /// The request was refused as a whole.
    Refused { reason: String },
    /// "I do not keep this author's events; these nodes should": the asked author's home
    /// set as the answering node sees it, closest first.
    Redirect { members: Vec<WireMember> },
    /// The negentropy answer to a `Reconcile` round.
    Reconciled { message: serde_bytes::ByteBuf },
}

/// A node and the addresses to dial it at, as text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireMember {
    pub peer: String,
    pub addrs: Vec<String>,
}

impl WireMember {
    pub fn from_member(m: &crate::homeset::Member) -> Self {
        Self {
            peer: m.peer.to_string(),
            addrs: m.addrs.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The member, if its PeerId parses (unparseable addresses are skipped).
    pub fn to_member(&self) -> Option<crate::homeset::Member> {
        Some(crate::homeset::Member {
            peer: self.peer.parse().ok()?,
            addrs: self.addrs.iter().filter_map(|a| a.parse().ok()).collect(),
        })
    }
}

impl Request {
    pub fn new(body: RequestBody) -> Self {
        Self { v: VERSION, body }
    }

    /// Checks the version and the item counts; the reason is sent back as `Refused`.
    pub fn check(&self, limits: &WireLimits) -> Result<(), String> {
        if self.v != VERSION {
            return Err(format!(
                "unsupported wire version {} (this node speaks {VERSION})",
                self.v
            ));
        }
        let (what, n, max) = match &self.body {
            RequestBody::Push { events } => ("events", events.len(), limits.events),
            RequestBody::Subscribe { authors, addrs, .. } => (
                "authors or addresses",
                authors.len().max(addrs.len()),
                limits.items,
            ),
            RequestBody::Unsubscribe { authors } | RequestBody::Moved { authors } => {
                ("authors", authors.len(), limits.items)
            }
            RequestBody::Fetch { filters, .. } => ("filters", filters.len(), limits.items),
            RequestBody::Reconcile { .. } => ("filters", 1, limits.items),
        };
        if n > max {
            return Err(format!("too many {what}: {n} (at most {max})"));
        }
        Ok(())
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self.body {
            RequestBody::Push { .. } => "push",
            RequestBody::Subscribe { .. } => "subscribe",
            RequestBody::Unsubscribe { .. } => "unsubscribe",
            RequestBody::Fetch { .. } => "fetch",
            RequestBody::Moved { .. } => "moved",
            RequestBody::Reconcile { .. } => "reconcile",
        }
    }
}

impl Response {
    pub fn new(body: ResponseBody) -> Self {
        Self { v: VERSION, body }
    }

    pub fn refused(reason: impl Into<String>) -> Self {
        Self::new(ResponseBody::Refused {
            reason: reason.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_bounded() {
        let limits = WireLimits {
            events: 2,
            items: 1,
        };
        let push = Request::new(RequestBody::Push {
            events: vec!["{}".into(); 3],
        });
        assert!(push.check(&limits).unwrap_err().contains("too many events"));
        let sub = Request::new(RequestBody::Subscribe {
            authors: vec!["a".into()],
            since: 0,
            lease_secs: 60,
            addrs: vec![],
        });
        assert_eq!(sub.check(&limits), Ok(()));
        let old = Request {
            v: 99,
            body: RequestBody::Unsubscribe { authors: vec![] },
        };
        assert!(old.check(&limits).unwrap_err().contains("version 99"));
    }
}

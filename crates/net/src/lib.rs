//! starling's peer-to-peer overlay, on rust-libp2p.
//!
//! - [`actor`]: the one task that owns the libp2p swarm; everyone else talks to it
//!   through the cheap [`Network`] handle (`handle`).
//! - [`behaviour`]: the composed protocols (identify, ping, Kademlia, AutoNAT v2, relay,
//!   DCUtR, request-response, gossipsub) and the transports.
//! - [`wire`]: starling's own versioned, size-bounded messages.
//! - [`home`]: owner-signed home records in the DHT: npub → PeerId and addresses.
//! - [`service`]: answers peers' requests (pushes, subscriptions, fetches) under the write
//!   policy in [`policy`], and feeds accepted events into the node's one ingest path.
//! - [`follow`], [`subscribers`], [`outbox`], [`fetch`], [`broadcast`], [`home_task`]: the
//!   delivery tasks built on the handle (follow-mode subscriptions, pushes to followers,
//!   the durable outbox for replies/mentions/reactions, fetching unknown authors,
//!   broadcast mode, keeping the home record published).
//! - [`node`]: wires all of it to a node's store and bus; the binary calls only this.
//! - [`sim`]: a whole node in one process (store, core, network) for benchmarks and tests.

pub mod actor;
pub mod behaviour;
pub mod broadcast;
pub mod budget;
pub mod catchup;
pub mod config;
pub mod event_times;
pub mod fetch;
pub mod follow;
pub mod handle;
pub mod held;
pub mod home;
pub mod home_task;
pub mod homeset;
pub mod inbox;
pub mod keep_alive;
pub mod node;
pub mod outbox;
pub mod policy;
pub mod reconcile;
pub mod repair;
pub mod served;
pub mod service;
pub mod sim;
pub mod strikes;
pub mod subscribers;
pub mod traffic;
pub mod wire;

/// The libp2p this crate is built on, for callers that handle keys and addresses.
pub use libp2p;

pub use config::{parse_bootstrap, HomeSettings, NetSettings, OutboxSettings};
pub use handle::{Delivered, NetStatus, Network, Path, PeerInfo, Reachability};
pub use home::{HomeRecord, HOME_RECORD_KIND};
pub use node::{NetNode, NetNodeStatus, NetRemote, NodeParts};
pub use traffic::Traffic;

/// Errors of the network layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("the network has stopped")]
    Stopped,
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, String),
    #[error("peer {0} is unreachable")]
    Unreachable(String),
    #[error("the peer did not answer in time")]
    Timeout,
    #[error("request failed: {0}")]
    Request(String),
    #[error("the DHT could not store the record: {0}")]
    Dht(String),
    #[error("a node cannot send a request to itself")]
    SelfRequest,
    #[error("the peer refused: {0}")]
    Refused(String),
    #[error("the peer answered out of protocol")]
    Protocol,
    #[error("no home record found for {0}")]
    NoHome(String),
    #[error("no home set found for {0}: no reachable node is known yet")]
    NoHomeSet(String),
    #[error("event store: {0}")]
    Store(String),
    #[error("outbox database: {0}")]
    Outbox(String),
}

impl<T: std::fmt::Debug> From<libp2p::TransportError<T>> for NetError {
    fn from(e: libp2p::TransportError<T>) -> Self {
        NetError::Transport(format!("{e:?}"))
    }
}

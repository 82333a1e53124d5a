//! [`Remote`]: what the client APIs may ask of the peer-to-peer network without depending
//! on it. The network crate implements it; a node without a network (tests, imports)
//! simply has none.

use starling_proto::{Event, PublicKey};

/// The network, as the client APIs see it.
#[async_trait::async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Fetches from the network what the node holds nothing of for these authors (their
    /// profile, follow list and recent posts) and ingests it. Returns how many events
    /// arrived. Authors already known, the owner, and authors tried moments ago are
    /// skipped.
    async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize;

    /// Queues a gift wrap (NIP-59) that the owner's authenticated client published for
    /// delivery to the recipient it names (their node and home set), durably: once this
    /// returns, the wrap goes out even across a restart.
    async fn send_private(&self, wrap: &Event, json: &str) -> Result<(), String>;

    /// The network part of `GET /api/status`.
    async fn status(&self) -> serde_json::Value;

    /// `author`'s home record (PeerId and addresses), if the DHT has a valid one.
    async fn whereis(&self, author: PublicKey) -> Result<Option<serde_json::Value>, String>;
}

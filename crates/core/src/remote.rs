//! [`Remote`]: what the client APIs may ask of the peer-to-peer network without depending
//! on it. The network crate implements it; a node without a network (tests, imports)
//! simply has none.

use starling_proto::PublicKey;

/// The network, as the client APIs see it.
#[async_trait::async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Fetches from the network what the node holds nothing of for these authors (their
    /// profile, follow list and recent posts) and ingests it. Returns how many events
    /// arrived. Authors already known, the owner, and authors tried moments ago are
    /// skipped.
    async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize;

    /// The network part of `GET /api/status`.
    async fn status(&self) -> serde_json::Value;

    /// `author`'s home record (PeerId and addresses), if the DHT has a valid one.
    async fn whereis(&self, author: PublicKey) -> Result<Option<serde_json::Value>, String>;
}

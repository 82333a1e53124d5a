//! starling's event store. [`EventStore`] is the backend-neutral interface the node uses;
//! [`sqlite::SqliteStore`] is the embedded default (one writer thread that batches commits,
//! a pool of readers that never wait for it); `postgres::PostgresStore` (cargo feature
//! `postgres`) is the backend for large public nodes, with the same design and the same
//! [`test_suite`].
//!
//! Every event handed to a store has already been validated (`starling_proto::validate`)
//! and comes with its canonical JSON ([`RenderedEvent`]), which is what the store keeps:
//! the store applies NIP-01 storage rules (replaceable, addressable and ephemeral kinds,
//! duplicates), NIP-09 deletion, NIP-40 expiration and the size bound with its pruning.

use std::sync::Arc;

use async_trait::async_trait;
use starling_proto::{Event, Filter, PublicKey, RenderedEvent, Timestamp};

#[cfg(feature = "postgres")]
pub mod postgres;
pub mod reconcile;
pub mod sqlite;
#[cfg(feature = "test-suite")]
pub mod test_suite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use reconcile::negentropy_storage;
pub use sqlite::SqliteStore;

/// What became of an event handed to [`EventStore::save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Stored (for a replaceable or addressable event: it replaced an older version).
    Stored,
    /// The store already held this event.
    Duplicate,
    /// A newer version of this replaceable or addressable event is stored.
    Superseded,
    /// Its author has deleted it (NIP-09).
    Deleted,
    /// An ephemeral event: to be relayed live, never stored.
    Ephemeral,
}

/// Options that every backend takes when opened.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Upper bound on the stored events' bytes (their JSON form); `None` for no bound.
    /// Past it the oldest events of unprotected authors are pruned.
    pub max_bytes: Option<u64>,
    /// Authors whose events pruning never drops (the node's owner).
    pub protected_authors: Vec<PublicKey>,
}

/// Figures about a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Stored events.
    pub events: u64,
    /// Bytes of the stored events' JSON.
    pub event_bytes: u64,
}

/// Where an event sits in the order set reconciliation (negentropy, NIP-77) works on:
/// its `created_at` and its 32-byte id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub created_at: u64,
    pub id: [u8; 32],
}

/// Errors of a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored event could not be read back: {0}")]
    Corrupt(String),
    #[error("could not open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[cfg(feature = "postgres")]
    #[error("could not connect to PostgreSQL: {source}")]
    Connect {
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the store is shut down")]
    Closed,
}

/// The interface between the node and its storage backend.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores one validated event and reports what became of it. Returns once the event
    /// is durable (committed), so an acknowledgement sent after it survives a crash.
    /// The store only reads the event (shared, not copied, with the caller, who can hand
    /// it on to the bus afterwards).
    async fn save(&self, event: Arc<RenderedEvent>) -> Result<SaveOutcome, StoreError>;

    /// Stores many validated events in as few commits as possible (imports, sync).
    async fn save_many(
        &self,
        events: Vec<Arc<RenderedEvent>>,
    ) -> Result<Vec<SaveOutcome>, StoreError>;

    /// Events matching any of `filters`, newest first (ties by id), each filter's `limit`
    /// applied to that filter's matches, expired events left out.
    async fn query(&self, filters: Vec<Filter>) -> Result<Vec<Event>, StoreError>;

    /// As [`EventStore::query`], but each event as its stored JSON text.
    async fn query_json(&self, filters: Vec<Filter>) -> Result<Vec<String>, StoreError>;

    /// The keys of the events matching any of `filters`, newest first, each filter's
    /// `limit` applied (and at most `max` per filter): the set a reconciliation compares.
    async fn keys(&self, filters: Vec<Filter>, max: usize) -> Result<Vec<EventKey>, StoreError>;

    /// How many events match any of `filters` (NIP-45), ignoring `limit`.
    async fn count(&self, filters: Vec<Filter>) -> Result<u64, StoreError>;

    /// Removes events whose NIP-40 expiration is before `now`; returns how many.
    async fn remove_expired(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Current figures.
    async fn stats(&self) -> Result<StoreStats, StoreError>;
}

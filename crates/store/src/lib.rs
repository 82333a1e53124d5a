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
mod queue;
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
    Sqlite(rusqlite::Error),
    /// The disk holding the store has no room left (SQLite's `SQLITE_FULL`). Nothing of
    /// the failed write was kept; writes succeed again once space is freed.
    #[error(
        "storage full: no space left on the disk holding the store, nothing was written ({0})"
    )]
    Full(String),
    /// The operating system failed a read or write of the store's files (SQLite's
    /// `SQLITE_IOERR`). Nothing of a failed write was kept.
    #[error(
        "storage I/O error: the operating system failed a read or write of the store's files ({0})"
    )]
    Io(String),
    /// The batch a write was part of failed and was rolled back.
    #[error("the write failed and was rolled back: {0}")]
    RolledBack(String),
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
    Postgres(tokio_postgres::Error),
    #[cfg(feature = "postgres")]
    #[error("could not connect to PostgreSQL: {source}")]
    Connect {
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the store is shut down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    /// Sorts SQLite's errors by what a caller can do about them: a full disk and an I/O
    /// failure get their own variants (an operator's problem, not a bug), the rest stay
    /// SQLite errors.
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Self::Full(e.to_string()),
            Some(rusqlite::ErrorCode::SystemIoFailure) => Self::Io(e.to_string()),
            _ => Self::Sqlite(e),
        }
    }
}

#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for StoreError {
    /// As for SQLite: the server's full disk (SQLSTATE 53100) and I/O failures (58030)
    /// get their own variants, the rest stay PostgreSQL errors.
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::DISK_FULL => Self::Full(e.to_string()),
            Some(c) if *c == SqlState::IO_ERROR => Self::Io(e.to_string()),
            _ => Self::Postgres(e),
        }
    }
}

impl StoreError {
    /// Whether the error says the disk is full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// The same error for another waiter of a failed batch (a full disk stays a full
    /// disk, an I/O error an I/O error; anything else becomes [`StoreError::RolledBack`]).
    pub fn for_waiter(&self) -> Self {
        match self {
            Self::Full(m) => Self::Full(m.clone()),
            Self::Io(m) => Self::Io(m.clone()),
            Self::Closed => Self::Closed,
            Self::RolledBack(m) => Self::RolledBack(m.clone()),
            other => Self::RolledBack(other.to_string()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn a_full_disk_and_io_errors_get_their_own_variants() {
        let full = StoreError::from(sqlite(ffi::SQLITE_FULL));
        assert!(full.is_full());
        assert!(full.to_string().starts_with("storage full: "), "{full}");
        let io = StoreError::from(sqlite(ffi::SQLITE_IOERR_WRITE));
        assert!(matches!(io, StoreError::Io(_)), "{io:?}");
        assert!(matches!(
            StoreError::from(sqlite(ffi::SQLITE_CONSTRAINT)),
            StoreError::Sqlite(_)
        ));
        // Every waiter of a failed batch hears the same kind of error.
        assert!(full.for_waiter().is_full());
        assert!(matches!(io.for_waiter(), StoreError::Io(_)));
        assert!(matches!(
            StoreError::Corrupt("x".into()).for_waiter(),
            StoreError::RolledBack(_)
        ));
    }
}

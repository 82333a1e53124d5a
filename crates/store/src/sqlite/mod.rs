//! The embedded SQLite backend: a WAL database file with one writer thread
//! ([`writer::Writer`]), a thread for its WAL checkpoints ([`checkpoint`]) and a pool of
//! readers ([`pool::ReadPool`]).

mod checkpoint;
pub(crate) mod insert;
mod pool;
pub(crate) mod query;
mod schema;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;
use starling_proto::{Event, Filter, RenderedEvent, Timestamp};
use tokio::sync::mpsc;

use self::pool::ReadPool;
use self::writer::Writer;
use crate::queue::{Counters, WriteQueue};
use crate::{EventKey, EventStore, SaveOutcome, StoreError, StoreOptions, StoreStats};

pub use self::insert::MAX_INDEXED_TAG_VALUE;

/// Queued write requests before callers wait.
const WRITE_QUEUE: usize = 4096;
/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: u32 = 8 * 1024;
/// Reader connections.
const READERS: usize = 4;
/// Most events one filter may return.
const MAX_LIMIT: usize = 5000;

/// The SQLite event store.
pub struct SqliteStore {
    writer: WriteQueue,
    readers: Arc<ReadPool>,
    counters: Arc<Counters>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    /// Must be called inside a tokio runtime.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        schema::configure(&conn).map_err(open_err)?;
        // The writer walks every index on each insert: a larger page cache saves it many
        // of its page reads. Readers keep the default.
        conn.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))
            .map_err(open_err)?;
        schema::migrate(&conn).map_err(open_err)?;
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(conn, counters.clone(), &options).map_err(open_err)?;
        writer.checkpoint_beside(path).map_err(|e| {
            StoreError::Corrupt(format!("could not start the WAL checkpoint thread: {e}"))
        })?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Corrupt(format!("could not start the writer thread: {e}")))?;
        Ok(Self {
            writer: WriteQueue::new(tx),
            readers: Arc::new(ReadPool::new(path.to_path_buf(), READERS)),
            counters,
        })
    }

    /// Opens an existing database for reading only: no writer thread, no schema change and
    /// no checkpoint, so it can sit beside a running node's store (WAL readers never block
    /// the writer). Writes fail with [`StoreError::Closed`]; [`EventStore::stats`] reads
    /// zero, as the figures are kept by the writer.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        // Fails now, rather than at the first query, when there is no database.
        Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let (writer, _) = mpsc::channel(1);
        Ok(Self {
            writer: WriteQueue::new(writer),
            readers: Arc::new(ReadPool::new(path.to_path_buf(), READERS)),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Finishes queued writes, checkpoints the WAL and stops the writer. Later writes fail
    /// with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        self.writer.shutdown().await
    }
}

fn now() -> i64 {
    Timestamp::now().as_secs() as i64
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn save(&self, event: Arc<RenderedEvent>) -> Result<SaveOutcome, StoreError> {
        self.writer.save(event).await
    }

    async fn save_many(
        &self,
        events: Vec<Arc<RenderedEvent>>,
    ) -> Result<Vec<SaveOutcome>, StoreError> {
        self.writer.save_many(events).await
    }

    async fn query(&self, filters: Vec<Filter>) -> Result<Vec<Event>, StoreError> {
        self.query_json(filters)
            .await?
            .iter()
            .map(|json| serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn query_json(&self, filters: Vec<Filter>) -> Result<Vec<String>, StoreError> {
        let now = now();
        self.readers
            .run(move |conn| query::select_json(conn, &filters, MAX_LIMIT, now))
            .await
    }

    async fn keys(&self, filters: Vec<Filter>, max: usize) -> Result<Vec<EventKey>, StoreError> {
        let now = now();
        self.readers
            .run(move |conn| query::select_keys(conn, &filters, max, now))
            .await
    }

    async fn count(&self, filters: Vec<Filter>) -> Result<u64, StoreError> {
        let now = now();
        self.readers
            .run(move |conn| query::count(conn, &filters, now))
            .await
    }

    async fn remove_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.writer.remove_expired(now.as_secs() as i64).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            events: self.counters.events.load(Ordering::Relaxed),
            event_bytes: self.counters.bytes.load(Ordering::Relaxed),
        })
    }
}

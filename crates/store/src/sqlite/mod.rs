//! The embedded SQLite backend: a WAL database file with one writer thread
//! ([`writer::Writer`]) and a pool of readers ([`pool::ReadPool`]).

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
use tokio::sync::{mpsc, oneshot};

use self::pool::ReadPool;
use self::writer::{Counters, WriteCmd, Writer};
use crate::{EventKey, EventStore, SaveOutcome, StoreError, StoreOptions, StoreStats};

pub use self::insert::MAX_INDEXED_TAG_VALUE;

/// Queued write requests before callers wait.
const WRITE_QUEUE: usize = 4096;
/// Events per write request in `save_many`.
const IMPORT_CHUNK: usize = 1000;
/// The writer's page cache, in KiB.
const WRITER_CACHE_KIB: u32 = 8 * 1024;
/// Reader connections.
const READERS: usize = 4;
/// Most events one filter may return.
const MAX_LIMIT: usize = 5000;

/// The SQLite event store.
pub struct SqliteStore {
    writer: mpsc::Sender<WriteCmd>,
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
        let writer = Writer::new(conn, counters.clone(), &options).map_err(open_err)?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Corrupt(format!("could not start the writer thread: {e}")))?;
        Ok(Self {
            writer: tx,
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
            writer,
            readers: Arc::new(ReadPool::new(path.to_path_buf(), READERS)),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Finishes queued writes, checkpoints the WAL and stops the writer. Later writes fail
    /// with [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.writer.send(WriteCmd::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> WriteCmd,
    ) -> Result<T, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }
}

fn now() -> i64 {
    Timestamp::now().as_secs() as i64
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn save(&self, event: Arc<RenderedEvent>) -> Result<SaveOutcome, StoreError> {
        let outcomes = self
            .write(|reply| WriteCmd::Save(vec![event], reply))
            .await?;
        outcomes.into_iter().next().ok_or(StoreError::Closed)
    }

    async fn save_many(
        &self,
        mut events: Vec<Arc<RenderedEvent>>,
    ) -> Result<Vec<SaveOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(events.len());
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(IMPORT_CHUNK));
            let chunk = std::mem::replace(&mut events, rest);
            outcomes.extend(self.write(|reply| WriteCmd::Save(chunk, reply)).await?);
        }
        Ok(outcomes)
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
        let now = now.as_secs() as i64;
        self.write(|reply| WriteCmd::RemoveExpired(now, reply))
            .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Ok(StoreStats {
            events: self.counters.events.load(Ordering::Relaxed),
            event_bytes: self.counters.bytes.load(Ordering::Relaxed),
        })
    }
}

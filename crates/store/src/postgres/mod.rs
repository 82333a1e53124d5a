//! The PostgreSQL backend, for large public nodes: one writer task that batches commits
//! ([`writer::Writer`], the same design as the SQLite writer) and a few reader connections
//! ([`connect::Readers`]) that never wait for it. It keeps the SQLite backend's rules and
//! schema shape and passes the same [`test_suite`](crate::test_suite).
//!
//! A save returns once its transaction has committed; with PostgreSQL's default
//! `synchronous_commit = on` that is after the server flushed its WAL. Several starling
//! processes may share one database: their write transactions take turns on an advisory
//! lock, and readers see every commit at once, so `starling export` needs no read-only mode.

mod connect;
mod insert;
mod query;
mod schema;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use starling_proto::{Event, Filter, RenderedEvent, Timestamp};
use tokio::sync::mpsc;
use tokio_postgres::Config;

use self::connect::{connect, Readers};
use self::writer::Writer;
use crate::queue::{Counters, WriteQueue};
use crate::{EventKey, EventStore, SaveOutcome, StoreError, StoreOptions, StoreStats};

pub use tokio_postgres::Config as PostgresConfig;

/// Queued write requests before callers wait.
const WRITE_QUEUE: usize = 4096;
/// Reader connections.
const READERS: usize = 4;
/// Most events one filter may return.
const MAX_LIMIT: usize = 5000;

/// The PostgreSQL event store.
pub struct PostgresStore {
    writer: WriteQueue,
    readers: Readers,
    counters: Arc<Counters>,
}

impl PostgresStore {
    /// Connects to the database named by `url` (a `postgresql://` URL or a libpq
    /// `key=value` string), creates or checks the schema and starts the writer task.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let config: Config = url
            .parse()
            .map_err(|source| StoreError::Connect { source })?;
        Self::open_with(config, options).await
    }

    /// As [`PostgresStore::open`], with a parsed configuration (to set a schema through
    /// `options("-c search_path=...")`, for instance).
    pub async fn open_with(config: Config, options: StoreOptions) -> Result<Self, StoreError> {
        let mut client = connect(&config).await?;
        schema::migrate(&mut client).await?;
        drop(client);
        let counters = Arc::new(Counters::default());
        let writer = Writer::start(config.clone(), counters.clone(), &options).await?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer.run(rx));
        Ok(Self {
            writer: WriteQueue::new(tx),
            readers: Readers::new(config, READERS),
            counters,
        })
    }

    /// Finishes queued writes and stops the writer. Later writes fail with
    /// [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        self.writer.shutdown().await
    }
}

fn now() -> i64 {
    Timestamp::now().as_secs() as i64
}

#[async_trait]
impl EventStore for PostgresStore {
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
        let client = self.readers.get().await?;
        query::select_json(&client, &filters, MAX_LIMIT, now()).await
    }

    async fn keys(&self, filters: Vec<Filter>, max: usize) -> Result<Vec<EventKey>, StoreError> {
        let client = self.readers.get().await?;
        query::select_keys(&client, &filters, max, now()).await
    }

    async fn count(&self, filters: Vec<Filter>) -> Result<u64, StoreError> {
        let client = self.readers.get().await?;
        query::count(&client, &filters, now()).await
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

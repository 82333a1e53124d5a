//! Opening the node's event store as `[store]` in config.toml chose it: the SQLite file in
//! the data directory (the default) or a PostgreSQL database. The rest of the binary sees
//! an `Arc<dyn EventStore>` and calls [`NodeStore::shutdown`] when it is done.

use std::sync::Arc;

#[cfg(feature = "postgres")]
use anyhow::Context;
#[cfg(feature = "postgres")]
use starling_store::PostgresStore;
use starling_store::{EventStore, SqliteStore, StoreOptions};

use crate::config::StoreLocation;
use crate::datadir::DataDir;

/// The opened store, by backend.
pub enum NodeStore {
    Sqlite(Arc<SqliteStore>),
    #[cfg(feature = "postgres")]
    Postgres(Arc<PostgresStore>),
}

impl NodeStore {
    /// Opens the store for reading and writing (creating its schema if needed).
    pub async fn open(
        dir: &DataDir,
        location: &StoreLocation,
        options: StoreOptions,
    ) -> anyhow::Result<Self> {
        match location {
            StoreLocation::Sqlite => Ok(Self::Sqlite(Arc::new(SqliteStore::open(
                &dir.events_db(),
                options,
            )?))),
            StoreLocation::Postgres(url) => Self::open_postgres(url, options).await,
        }
    }

    /// Opens the store to read beside a running node: SQLite read-only (`None` when the
    /// data directory has no database yet); PostgreSQL as usual, as the server lets any
    /// number of clients read and write at once.
    pub async fn open_for_reading(
        dir: &DataDir,
        location: &StoreLocation,
    ) -> anyhow::Result<Option<Self>> {
        match location {
            StoreLocation::Sqlite if !dir.events_db().exists() => Ok(None),
            StoreLocation::Sqlite => Ok(Some(Self::Sqlite(Arc::new(SqliteStore::open_read_only(
                &dir.events_db(),
            )?)))),
            StoreLocation::Postgres(url) => Ok(Some(
                Self::open_postgres(url, StoreOptions::default()).await?,
            )),
        }
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres(url: &str, options: StoreOptions) -> anyhow::Result<Self> {
        let store = PostgresStore::open(url, options)
            .await
            .context("cannot open the PostgreSQL store (store.postgres_url in config.toml)")?;
        Ok(Self::Postgres(Arc::new(store)))
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(_url: &str, _options: StoreOptions) -> anyhow::Result<Self> {
        anyhow::bail!(
            "this starling was built without PostgreSQL support (cargo feature `postgres`)"
        )
    }

    /// The store as the node's parts take it.
    pub fn shared(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Sqlite(store) => store.clone(),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.clone(),
        }
    }

    /// Finishes queued writes and stops the writer (SQLite also checkpoints its WAL).
    pub async fn shutdown(&self) {
        match self {
            Self::Sqlite(store) => store.shutdown().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.shutdown().await,
        }
    }
}

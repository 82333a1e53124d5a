//! Connections to the PostgreSQL server: [`connect`] opens one and hands its I/O task to
//! tokio (the task ends when the client is dropped), and [`Readers`] keeps a few for
//! queries, opened lazily and opened again when the server dropped one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::{Client, Config, NoTls};
use tracing::{debug, warn};

use crate::StoreError;

/// Opens one connection (plain TCP or a unix socket; no TLS: the server is meant to be on
/// the same machine or a private network).
pub async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|source| StoreError::Connect { source })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(error = %e, "PostgreSQL connection ended with an error");
        }
    });
    Ok(client)
}

/// A few reader connections, used in turn. tokio-postgres pipelines the queries sent on
/// one connection, so a slot is shared, never checked out.
pub struct Readers {
    config: Config,
    /// Each slot's client. The lock is held only to read or replace it, never across an
    /// await.
    slots: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
}

impl Readers {
    pub fn new(config: Config, size: usize) -> Self {
        Self {
            config,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A live reader connection, opening one if its slot is empty or its connection closed.
    pub async fn get(&self) -> Result<Arc<Client>, StoreError> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let current = slot.lock().expect("reader slot lock").clone();
        if let Some(client) = current.filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        debug!("opening a PostgreSQL reader connection");
        let client = Arc::new(connect(&self.config).await?);
        *slot.lock().expect("reader slot lock") = Some(client.clone());
        Ok(client)
    }
}

//! A small pool of read-only SQLite connections. Queries run on tokio's blocking threads;
//! in WAL mode they read a consistent snapshot and never wait for the writer. Connections
//! are opened lazily, so an idle node holds none beyond the first.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::schema;
use crate::StoreError;

/// Compiled statements each reader keeps: a filter naming many authors runs one per
/// author side by side (see `query::select_filter`), so a few such filters need dozens.
const STATEMENTS: usize = 64;

pub struct ReadPool {
    path: PathBuf,
    /// Idle connections. The lock is held only to push or pop, never across an await.
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    pub fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|source| StoreError::Open {
                path: self.path.display().to_string(),
                source,
            })?;
        schema::configure(&conn)?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        Ok(conn)
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        self.idle.lock().expect("pool lock").push(conn);
        Ok(result?)
    }
}

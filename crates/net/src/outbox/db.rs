//! The network's durable tables, in their own SQLite file (`outbox.db`) beside the event
//! store: the outbox, one row per (event, recipient) with its state, attempt count and
//! next try; and the live subscriptions of followers at this node, so that a restart does
//! not cut them off until they renew.
//! The authors this node keeps events of as a home-set member are listed in `held`; where
//! each followed author was last served, in `follow_hints` (see `follow::hints`).
//! Rows are inserted idempotently, so re-scanning the owner's recent events after a crash
//! or a lagging bus re-adds nothing already delivered.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use tracing::warn;

use crate::NetError;

/// A row due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    pub event_id: String,
    pub target: String,
    pub json: String,
    pub created: u64,
    pub attempts: u32,
    /// For a home-set row: the members that already took the event.
    pub acks: Vec<String>,
}

/// Counts by state, for `starling status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Depth {
    pub pending: u64,
    pub delivered: u64,
    pub given_up: u64,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS outbox (
    event_id  TEXT NOT NULL,
    target    TEXT NOT NULL,
    json      TEXT NOT NULL,
    created   INTEGER NOT NULL,  -- when queued (unix seconds)
    state     INTEGER NOT NULL,  -- 0 pending, 1 delivered, 2 given up
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (event_id, target)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE TABLE IF NOT EXISTS subscribers (
    peer     TEXT PRIMARY KEY,
    authors  TEXT NOT NULL,      -- JSON array of hex public keys
    addrs    TEXT NOT NULL,      -- JSON array of multiaddrs
    expires  INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    author   TEXT PRIMARY KEY,   -- hex public key this node keeps events of as a home-set member
    since    INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS follow_hints (
    author   TEXT PRIMARY KEY,   -- hex public key of a followed author
    hint     TEXT NOT NULL,      -- JSON: the node that served the subscription, the home set
    updated  INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at INTEGER NOT NULL
);
";

/// Adds `outbox.acks` (home-set members that took a row's event, space-separated
/// PeerIds) to a database made before home sets.
fn add_acks_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'acks'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE outbox ADD COLUMN acks TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// The outbox table. Calls are short; they run on blocking threads.
#[derive(Clone)]
pub struct OutboxDb {
    conn: Arc<Mutex<Connection>>,
}

/// Logs a failed write whose caller carries on without it (on a full disk, say): the rows
/// keep their old state and are dealt with again later, which the idempotent inserts and
/// the receivers' duplicate checks make harmless.
pub(crate) fn log_failed_write(result: Result<(), NetError>, what: &str) {
    if let Err(e) = result {
        warn!(error = %e, "outbox.db: cannot {what}; carrying on without it");
    }
}

fn db_err(e: rusqlite::Error) -> NetError {
    NetError::Outbox(e.to_string())
}

impl OutboxDb {
    pub fn open(path: &Path) -> Result<Self, NetError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        add_acks_column(&conn).map_err(db_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on a blocking thread with the connection.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, NetError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // The lock is held only for one short statement batch on this thread.
            let conn = conn.lock().expect("outbox connection poisoned");
            f(&conn)
        })
        .await
        .map_err(|e| NetError::Outbox(e.to_string()))?
        .map_err(db_err)
    }

    /// Queues `json` (event `event_id`) for each target; returns how many rows are new.
    pub async fn enqueue(
        &self,
        event_id: String,
        json: String,
        targets: Vec<String>,
        now: u64,
    ) -> Result<usize, NetError> {
        self.with(move |c| {
            let mut n = 0;
            let mut stmt = c.prepare_cached(
                "INSERT OR IGNORE INTO outbox (event_id, target, json, created, state, next_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?4)",
            )?;
            for t in &targets {
                n += stmt.execute(params![event_id, t, json, now as i64])?;
            }
            Ok(n)
        })
        .await
    }

    /// Pending rows due at `now`, oldest first.
    pub async fn due(&self, now: u64, limit: usize) -> Result<Vec<Due>, NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT event_id, target, json, created, attempts, acks FROM outbox
                 WHERE state = 0 AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now as i64, limit as i64], |r| {
                Ok(Due {
                    event_id: r.get(0)?,
                    target: r.get(1)?,
                    json: r.get(2)?,
                    created: r.get::<_, i64>(3)? as u64,
                    attempts: r.get::<_, i64>(4)? as u32,
                    acks: r
                        .get::<_, String>(5)?
                        .split_whitespace()
                        .map(String::from)
                        .collect(),
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Marks rows delivered.
    pub async fn delivered(&self, rows: Vec<(String, String)>) -> Result<(), NetError> {
        self.set_state(rows, 1, None).await
    }

    /// Marks rows given up, with the reason.
    pub async fn give_up(
        &self,
        rows: Vec<(String, String)>,
        reason: String,
    ) -> Result<(), NetError> {
        self.set_state(rows, 2, Some(reason)).await
    }

    async fn set_state(
        &self,
        rows: Vec<(String, String)>,
        state: i64,
        reason: Option<String>,
    ) -> Result<(), NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outbox SET state = ?3, last_error = ?4 WHERE event_id = ?1 AND target = ?2",
            )?;
            for (id, target) in &rows {
                stmt.execute(params![id, target, state, reason])?;
            }
            Ok(())
        })
        .await
    }

    /// Reschedules a failed row.
    pub async fn retry(
        &self,
        rows: Vec<(String, String)>,
        next_at: Vec<u64>,
        reason: String,
    ) -> Result<(), NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?3, last_error = ?4
                 WHERE event_id = ?1 AND target = ?2",
            )?;
            for ((id, target), at) in rows.iter().zip(next_at) {
                stmt.execute(params![id, target, at as i64, reason])?;
            }
            Ok(())
        })
        .await
    }

    /// Records which members took each row's event (home-set rows).
    pub async fn set_acks(
        &self,
        rows: Vec<((String, String), Vec<String>)>,
    ) -> Result<(), NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outbox SET acks = ?3 WHERE event_id = ?1 AND target = ?2",
            )?;
            for ((id, target), acks) in &rows {
                stmt.execute(params![id, target, acks.join(" ")])?;
            }
            Ok(())
        })
        .await
    }

    /// The event ids whose row for `target` was delivered (for a home set: reached its
    /// quorum).
    pub async fn delivered_ids(&self, target: String) -> Result<Vec<String>, NetError> {
        self.with(move |c| {
            let mut stmt =
                c.prepare("SELECT event_id FROM outbox WHERE target = ?1 AND state = 1")?;
            let ids = stmt.query_map([target], |r| r.get(0))?.collect();
            ids
        })
        .await
    }

    /// How many rows for `target` are still pending (any due time).
    pub async fn pending_for(&self, target: String) -> Result<u64, NetError> {
        self.with(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 0 AND target = ?1",
                params![target],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
        .await
    }

    /// Authors kept as a home-set member.
    pub async fn held(&self) -> Result<Vec<String>, NetError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT author FROM held")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }

    pub async fn set_held(&self, author: String, held: bool, now: u64) -> Result<(), NetError> {
        self.with(move |c| {
            if held {
                c.execute(
                    "INSERT OR IGNORE INTO held (author, since) VALUES (?1, ?2)",
                    params![author, now as i64],
                )?;
            } else {
                c.execute("DELETE FROM held WHERE author = ?1", params![author])?;
            }
            Ok(())
        })
        .await
    }

    /// Forgets finished rows older than `before`.
    pub async fn prune(&self, before: u64) -> Result<usize, NetError> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM outbox WHERE state != 0 AND created < ?1",
                params![before as i64],
            )
        })
        .await
    }

    pub async fn depth(&self) -> Result<Depth, NetError> {
        self.with(|c| {
            let mut d = Depth::default();
            let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let n = r.get::<_, i64>(1)? as u64;
                match r.get::<_, i64>(0)? {
                    0 => d.pending = n,
                    1 => d.delivered = n,
                    _ => d.given_up = n,
                }
            }
            Ok(d)
        })
        .await
    }

    /// Records (or renews) a follower's subscription.
    pub async fn save_subscriber(
        &self,
        peer: String,
        authors: Vec<String>,
        addrs: Vec<String>,
        expires: u64,
    ) -> Result<(), NetError> {
        let authors = serde_json::to_string(&authors).unwrap_or_default();
        let addrs = serde_json::to_string(&addrs).unwrap_or_default();
        self.with(move |c| {
            c.execute(
                "INSERT INTO subscribers (peer, authors, addrs, expires) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (peer) DO UPDATE SET authors = excluded.authors,
                     addrs = excluded.addrs, expires = excluded.expires",
                params![peer, authors, addrs, expires as i64],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn remove_subscriber(&self, peer: String) -> Result<(), NetError> {
        self.with(move |c| {
            c.execute("DELETE FROM subscribers WHERE peer = ?1", params![peer])
                .map(|_| ())
        })
        .await
    }

    /// Subscriptions still live at `now`: (peer, authors, addrs, expires); expired ones are
    /// deleted.
    pub async fn load_subscribers(
        &self,
        now: u64,
    ) -> Result<Vec<(String, Vec<String>, Vec<String>, u64)>, NetError> {
        self.with(move |c| {
            c.execute(
                "DELETE FROM subscribers WHERE expires <= ?1",
                params![now as i64],
            )?;
            let mut stmt = c.prepare("SELECT peer, authors, addrs, expires FROM subscribers")?;
            let rows = stmt.query_map([], |r| {
                let authors: String = r.get(1)?;
                let addrs: String = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    serde_json::from_str(&authors).unwrap_or_default(),
                    serde_json::from_str(&addrs).unwrap_or_default(),
                    r.get::<_, i64>(3)? as u64,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    /// The newest owner event time already scanned into the outbox.
    pub async fn cursor(&self) -> Result<u64, NetError> {
        self.with(|c| {
            c.query_row(
                "SELECT created_at FROM outbox_cursor WHERE id = 1",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
        })
        .await
    }

    pub async fn set_cursor(&self, created_at: u64) -> Result<(), NetError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO outbox_cursor (id, created_at) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET created_at = MAX(created_at, excluded.created_at)",
                params![created_at as i64],
            )
            .map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_survive_reopen_and_enqueue_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let db = OutboxDb::open(&path).unwrap();
        assert_eq!(
            db.enqueue("e1".into(), "{}".into(), vec!["a".into(), "b".into()], 100)
                .await
                .unwrap(),
            2
        );
        db.delivered(vec![("e1".into(), "a".into())]).await.unwrap();
        db.retry(
            vec![("e1".into(), "b".into())],
            vec![200],
            "unreachable".into(),
        )
        .await
        .unwrap();
        drop(db);
        let db = OutboxDb::open(&path).unwrap();
        assert_eq!(
            db.enqueue("e1".into(), "{}".into(), vec!["a".into(), "b".into()], 150)
                .await
                .unwrap(),
            0
        );
        assert!(db.due(150, 10).await.unwrap().is_empty());
        let due = db.due(200, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].target.as_str(), due[0].attempts), ("b", 1));
        let d = db.depth().await.unwrap();
        assert_eq!((d.pending, d.delivered, d.given_up), (1, 1, 0));
        db.set_cursor(50).await.unwrap();
        db.set_cursor(40).await.unwrap();
        assert_eq!(db.cursor().await.unwrap(), 50);
    }
}

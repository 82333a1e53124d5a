//! The network's durable tables, in their own SQLite file (`outbox.db`) beside the event
//! store: the outbox, one row per (event, recipient) with its state, attempt count and
//! next try, and per target with pending rows, when its next round may start; and the
//! live subscriptions of followers at this node, so that a restart does
//! not cut them off until they renew.
//! The authors this node keeps events of as a home-set member are listed in `held`; where
//! each followed author was last served, in `follow_hints` (see `follow::hints`).
//! Rows are inserted idempotently, so re-scanning the owner's recent events after a crash
//! or a lagging bus re-adds nothing already delivered. The tables are in `schema`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use tracing::warn;

use crate::NetError;

/// Which row: the event (its `created_at` first, the table's order) and the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub at: i64,
    pub event_id: String,
    pub target: String,
}

/// A row due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    /// The event's `created_at`.
    pub at: i64,
    pub event_id: String,
    pub target: String,
    /// Empty until read from the event store, for rows queued without it.
    pub json: String,
    pub created: u64,
    pub attempts: u32,
    /// For a home-set row: the members that already took the event.
    pub acks: Vec<String>,
}

impl Due {
    /// This row's key.
    pub fn key(&self) -> RowKey {
        RowKey {
            at: self.at,
            event_id: self.event_id.clone(),
            target: self.target.clone(),
        }
    }
}

/// A target due for a delivery round, with its rows due.
#[derive(Debug, Clone)]
pub struct DueTarget {
    pub target: String,
    /// Its failed rounds in a row before this one.
    pub attempts: u32,
    pub rows: Vec<Due>,
}

/// An event to queue, with the targets it goes to.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The event's `created_at`.
    pub at: i64,
    pub event_id: String,
    /// The event's JSON, or empty when the event store holds it (read at delivery).
    pub json: String,
    pub targets: Vec<String>,
}

/// Counts by state, for `starling status`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Depth {
    pub pending: u64,
    pub delivered: u64,
    pub given_up: u64,
}

/// The outbox table. Calls are short; they run on blocking threads.
#[derive(Clone)]
pub struct OutboxDb {
    conn: Arc<Mutex<Connection>>,
}

fn set_state(
    c: &Connection,
    rows: &[RowKey],
    state: i64,
    reason: Option<&str>,
) -> rusqlite::Result<()> {
    let mut stmt = c.prepare_cached(
        "UPDATE outbox SET state = ?4, last_error = ?5
         WHERE at = ?1 AND event_id = ?2 AND target = ?3",
    )?;
    for k in rows {
        stmt.execute(params![k.at, k.event_id, k.target, state, reason])?;
    }
    Ok(())
}

/// `target`'s pending rows due at `now`, oldest first, at most `limit`.
fn due_rows(c: &Connection, target: &str, now: u64, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = c.prepare_cached(
        "SELECT at, event_id, target, json, created, attempts, acks FROM outbox
         WHERE target = ?1 AND state = 0 AND next_at <= ?2 ORDER BY next_at, at LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![target, now as i64, limit as i64], |r| {
        Ok(Due {
            at: r.get(0)?,
            event_id: r.get(1)?,
            target: r.get(2)?,
            json: r.get(3)?,
            created: r.get::<_, i64>(4)? as u64,
            attempts: r.get::<_, i64>(5)? as u32,
            acks: r
                .get::<_, String>(6)?
                .split_whitespace()
                .map(String::from)
                .collect(),
        })
    })?;
    rows.collect()
}

/// After a round that got something through: `target` is due again at its soonest pending
/// row, with its failure count reset, or dropped when it has nothing pending.
fn settle_progress(c: &Connection, target: &str) -> rusqlite::Result<()> {
    let soonest: Option<i64> = c
        .prepare_cached("SELECT MIN(next_at) FROM outbox WHERE target = ?1 AND state = 0")?
        .query_row([target], |r| r.get(0))?;
    match soonest {
        Some(next_at) => c
            .prepare_cached(
                "UPDATE outbox_targets SET attempts = 0, last_error = NULL, next_at = ?2
                 WHERE target = ?1",
            )?
            .execute(params![target, next_at])
            .map(|_| ()),
        None => c
            .prepare_cached("DELETE FROM outbox_targets WHERE target = ?1")?
            .execute([target])
            .map(|_| ()),
    }
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
        super::schema::create(&conn).map_err(db_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on a blocking thread with the connection, in one transaction: the
    /// statements of one call commit together (one WAL commit for a whole batch of rows,
    /// not one per row), or not at all when `f` fails.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, NetError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // The lock is held only for one short statement batch on this thread.
            let conn = conn.lock().expect("outbox connection poisoned");
            let tx = conn.unchecked_transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .map_err(|e| NetError::Outbox(e.to_string()))?
        .map_err(db_err)
    }

    /// Queues each event for its targets, all in one commit; returns how many rows are
    /// new. A target that had nothing pending is due at once; one that is waiting after
    /// failed rounds keeps its time, and the new rows wait with its backlog.
    pub async fn enqueue(&self, events: Vec<Queued>, now: u64) -> Result<usize, NetError> {
        self.with(move |c| {
            let mut n = 0;
            let mut row = c.prepare_cached(
                "INSERT OR IGNORE INTO outbox (at, event_id, target, json, created, state, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?5)",
            )?;
            let mut target = c.prepare_cached(
                "INSERT OR IGNORE INTO outbox_targets (target, next_at) VALUES (?1, ?2)",
            )?;
            let mut seen = std::collections::HashSet::new();
            for q in &events {
                for t in &q.targets {
                    n += row.execute(params![q.at, q.event_id, t, q.json, now as i64])?;
                    if seen.insert(t.as_str()) {
                        target.execute(params![t, now as i64])?;
                    }
                }
            }
            Ok(n)
        })
        .await
    }

    /// Up to `targets` targets due at `now` (soonest first), other than those in `skip`,
    /// each with up to `rows` of its pending rows that are due, oldest first. A due target
    /// without due rows is moved to its soonest row (or dropped when nothing is pending).
    pub async fn due(
        &self,
        now: u64,
        skip: Vec<String>,
        targets: usize,
        rows: usize,
    ) -> Result<Vec<DueTarget>, NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT target, attempts FROM outbox_targets
                 WHERE next_at <= ?1 ORDER BY next_at LIMIT ?2",
            )?;
            let wanted = (targets + skip.len()) as i64;
            let candidates = stmt
                .query_map(params![now as i64, wanted], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u32))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut due = Vec::new();
            for (target, attempts) in candidates {
                if due.len() == targets {
                    break;
                }
                if skip.contains(&target) {
                    continue;
                }
                let found = due_rows(c, &target, now, rows)?;
                if found.is_empty() {
                    settle_progress(c, &target)?;
                } else {
                    due.push(DueTarget {
                        target,
                        attempts,
                        rows: found,
                    });
                }
            }
            Ok(due)
        })
        .await
    }

    /// Records the end of a round to `target`: after progress its failure count starts
    /// over and it is due again at its soonest pending row (dropped when none is left);
    /// after a round that got nothing through, it waits until `failed`'s time, with its
    /// whole backlog.
    pub async fn settle(
        &self,
        target: String,
        failed: Option<(u64, String)>,
    ) -> Result<(), NetError> {
        self.with(move |c| match failed {
            None => settle_progress(c, &target),
            Some((next_at, reason)) => c
                .execute(
                    "UPDATE outbox_targets SET attempts = attempts + 1, next_at = ?2,
                     last_error = ?3 WHERE target = ?1",
                    params![target, next_at as i64, reason],
                )
                .map(|_| ()),
        })
        .await
    }

    /// Marks rows delivered.
    pub async fn delivered(&self, rows: Vec<RowKey>) -> Result<(), NetError> {
        self.set_state(rows, 1, None).await
    }

    /// Marks rows given up, with the reason.
    pub async fn give_up(&self, rows: Vec<RowKey>, reason: String) -> Result<(), NetError> {
        self.set_state(rows, 2, Some(reason)).await
    }

    async fn set_state(
        &self,
        rows: Vec<RowKey>,
        state: i64,
        reason: Option<String>,
    ) -> Result<(), NetError> {
        self.with(move |c| set_state(c, &rows, state, reason.as_deref()))
            .await
    }

    /// Reschedules failed rows.
    pub async fn retry(
        &self,
        rows: Vec<RowKey>,
        next_at: Vec<u64>,
        reason: String,
    ) -> Result<(), NetError> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?4, last_error = ?5
                 WHERE at = ?1 AND event_id = ?2 AND target = ?3",
            )?;
            for (k, next) in rows.iter().zip(next_at) {
                stmt.execute(params![k.at, k.event_id, k.target, next as i64, reason])?;
            }
            Ok(())
        })
        .await
    }

    /// Records which members took each row's event (home-set rows) and marks the rows in
    /// `done` delivered, in one commit.
    pub async fn record_acks(
        &self,
        rows: Vec<(RowKey, Vec<String>)>,
        done: Vec<RowKey>,
    ) -> Result<(), NetError> {
        self.with(move |c| {
            let mut acks = c.prepare_cached(
                "UPDATE outbox SET acks = ?4 WHERE at = ?1 AND event_id = ?2 AND target = ?3",
            )?;
            for (k, members) in &rows {
                acks.execute(params![k.at, k.event_id, k.target, members.join(" ")])?;
            }
            set_state(c, &done, 1, None)
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

    fn queued(id: &str, targets: &[&str]) -> Queued {
        Queued {
            at: 10,
            event_id: id.into(),
            json: String::new(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn key(id: &str, target: &str) -> RowKey {
        RowKey {
            at: 10,
            event_id: id.into(),
            target: target.into(),
        }
    }

    /// The keys of the rows due at `now`, sorted.
    async fn due_keys(db: &OutboxDb, now: u64) -> Vec<RowKey> {
        let mut keys: Vec<_> = db
            .due(now, Vec::new(), 10, 10)
            .await
            .unwrap()
            .iter()
            .flat_map(|t| t.rows.iter().map(Due::key))
            .collect();
        keys.sort_by(|x, y| (&x.event_id, &x.target).cmp(&(&y.event_id, &y.target)));
        keys
    }

    #[tokio::test]
    async fn a_batch_of_events_is_queued_in_one_call() {
        let dir = tempfile::tempdir().unwrap();
        let db = OutboxDb::open(&dir.path().join("outbox.db")).unwrap();
        let batch = vec![
            queued("e1", &["a", "b"]),
            queued("e2", &["a"]),
            queued("e1", &["a"]),
        ];
        assert_eq!(db.enqueue(batch, 100).await.unwrap(), 3);
        assert_eq!(
            due_keys(&db, 100).await,
            vec![key("e1", "a"), key("e1", "b"), key("e2", "a")]
        );
        let skipping_a = db.due(100, vec!["a".into()], 10, 10).await.unwrap();
        assert_eq!(
            skipping_a
                .iter()
                .map(|t| t.target.as_str())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
    }

    #[tokio::test]
    async fn a_failed_target_holds_back_its_backlog_and_new_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = OutboxDb::open(&dir.path().join("outbox.db")).unwrap();
        let batch = vec![queued("e1", &["a", "b"]), queued("e2", &["a"])];
        db.enqueue(batch, 100).await.unwrap();
        db.settle("a".into(), Some((105, "down".into())))
            .await
            .unwrap();
        // Rows queued for a waiting target wait with it; other targets go on.
        db.enqueue(vec![queued("e3", &["a", "c"])], 101)
            .await
            .unwrap();
        assert_eq!(
            due_keys(&db, 104).await,
            vec![key("e1", "b"), key("e3", "c")]
        );
        let due = db.due(105, Vec::new(), 10, 10).await.unwrap();
        let a = due.iter().find(|t| t.target == "a").unwrap();
        assert_eq!((a.rows.len(), a.attempts), (3, 1));
        assert!(a.rows.iter().all(|r| r.attempts == 0));
        // A round with progress starts the count over; a target with nothing left is gone.
        db.delivered(a.rows.iter().map(Due::key).collect())
            .await
            .unwrap();
        db.settle("a".into(), None).await.unwrap();
        assert!(db
            .due(200, Vec::new(), 10, 10)
            .await
            .unwrap()
            .iter()
            .all(|t| t.target != "a"));
        db.enqueue(vec![queued("e4", &["a"])], 300).await.unwrap();
        let due = db.due(300, Vec::new(), 10, 10).await.unwrap();
        let a = due.iter().find(|t| t.target == "a").unwrap();
        assert_eq!((a.rows.len(), a.attempts), (1, 0));
    }

    #[tokio::test]
    async fn a_target_whose_rows_wait_is_due_at_its_soonest_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = OutboxDb::open(&dir.path().join("outbox.db")).unwrap();
        db.enqueue(vec![queued("e1", &["a"])], 100).await.unwrap();
        db.retry(vec![key("e1", "a")], vec![150], "busy".into())
            .await
            .unwrap();
        assert!(db.due(120, Vec::new(), 10, 10).await.unwrap().is_empty());
        assert_eq!(due_keys(&db, 150).await, vec![key("e1", "a")]);
    }

    #[tokio::test]
    async fn rows_survive_reopen_and_enqueue_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let db = OutboxDb::open(&path).unwrap();
        assert_eq!(
            db.enqueue(vec![queued("e1", &["a", "b"])], 100)
                .await
                .unwrap(),
            2
        );
        db.delivered(vec![key("e1", "a")]).await.unwrap();
        db.retry(vec![key("e1", "b")], vec![200], "unreachable".into())
            .await
            .unwrap();
        drop(db);
        let db = OutboxDb::open(&path).unwrap();
        assert_eq!(
            db.enqueue(vec![queued("e1", &["a", "b"])], 150)
                .await
                .unwrap(),
            0
        );
        assert!(db.due(150, Vec::new(), 10, 10).await.unwrap().is_empty());
        let due = db.due(200, Vec::new(), 10, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let rows = &due[0].rows;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].target.as_str(), rows[0].attempts), ("b", 1));
        let d = db.depth().await.unwrap();
        assert_eq!((d.pending, d.delivered, d.given_up), (1, 1, 0));
        db.set_cursor(50).await.unwrap();
        db.set_cursor(40).await.unwrap();
        assert_eq!(db.cursor().await.unwrap(), 50);
    }
}

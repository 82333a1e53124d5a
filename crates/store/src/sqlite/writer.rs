//! The single writer: a dedicated thread that owns the one writable connection. It drains
//! whatever requests are queued, applies them in one transaction (a savepoint each, so one
//! failure does not sink the batch), commits once, then answers every request. Batching
//! turns many small commits into one fsync-free WAL append. After a commit it prunes when
//! the size bound is exceeded.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, Transaction};
use starling_proto::{PublicKey, RenderedEvent};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::insert::{self, delete_by_seq};
use crate::{SaveOutcome, StoreError, StoreOptions};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 1024;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A reply to send once the batch's commit has succeeded (`None`) or failed.
type Deferred = Box<dyn FnOnce(Option<&StoreError>)>;

/// A request to the writer.
pub enum WriteCmd {
    Save(Vec<Arc<RenderedEvent>>, Reply<Vec<SaveOutcome>>),
    RemoveExpired(i64, Reply<u64>),
    /// Finish queued work, checkpoint the WAL and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Running totals, written by the writer and read by anyone.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct Writer {
    conn: Connection,
    counters: Arc<Counters>,
    bound: Bound,
}

impl Writer {
    pub fn new(
        conn: Connection,
        counters: Arc<Counters>,
        options: &StoreOptions,
    ) -> rusqlite::Result<Self> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS stats (id INTEGER PRIMARY KEY CHECK (id = 0), events INTEGER NOT NULL, bytes INTEGER NOT NULL);
             INSERT OR IGNORE INTO stats (id, events, bytes) VALUES (0, 0, 0);",
        )?;
        let (events, bytes): (i64, i64) =
            conn.query_row("SELECT events, bytes FROM stats WHERE id = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        counters.events.store(events as u64, Ordering::Relaxed);
        counters.bytes.store(bytes as u64, Ordering::Relaxed);
        Ok(Self {
            conn,
            counters,
            bound: Bound {
                max_bytes: options.max_bytes,
                protected: options.protected_authors.iter().copied().collect(),
            },
        })
    }

    /// The writer loop; returns when every sender is gone or on `Shutdown`.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriteCmd>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if let Some(done) = self.process(batch) {
                self.checkpoint();
                let _ = done.send(());
                return;
            }
        }
        self.checkpoint();
    }

    fn checkpoint(&self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            warn!(error = %e, "WAL checkpoint failed");
        }
    }

    /// Applies a batch; returns the shutdown reply if the batch asked to stop.
    fn process(&mut self, batch: Vec<WriteCmd>) -> Option<oneshot::Sender<()>> {
        let mut replies: Vec<Deferred> = Vec::with_capacity(batch.len());
        let mut shutdown = None;
        let mut delta = (0i64, 0i64);
        let Self {
            conn,
            counters,
            bound,
        } = &mut *self;
        let result = (|| -> rusqlite::Result<(u64, u64)> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for cmd in batch {
                match cmd {
                    WriteCmd::Save(events, reply) => {
                        let outcome = save_all(&mut tx, &events, &mut delta);
                        replies.push(answer(reply, outcome));
                    }
                    WriteCmd::RemoveExpired(now, reply) => {
                        let outcome = remove_expired(&tx, now, &mut delta);
                        replies.push(answer(reply, outcome));
                    }
                    WriteCmd::Shutdown(done) => shutdown = Some(done),
                }
            }
            bound.prune_if_needed(&tx, counters, &mut delta)?;
            let totals = store_stats(&tx, counters, delta)?;
            tx.commit()?;
            Ok(totals)
        })();
        let failure = match result {
            Ok((events, bytes)) => {
                counters.events.store(events, Ordering::Relaxed);
                counters.bytes.store(bytes, Ordering::Relaxed);
                None
            }
            Err(e) => {
                warn!(error = %e, "write batch failed and was rolled back");
                Some(StoreError::from(e))
            }
        };
        for reply in replies {
            reply(failure.as_ref());
        }
        shutdown
    }
}

/// The size bound and the authors pruning spares.
struct Bound {
    max_bytes: Option<u64>,
    protected: HashSet<PublicKey>,
}

impl Bound {
    /// Prunes inside the batch's transaction when the batch took the store past its bound,
    /// down to 90% of it, so the bound holds when the batch's callers hear back.
    fn prune_if_needed(
        &self,
        tx: &Connection,
        counters: &Counters,
        delta: &mut (i64, i64),
    ) -> rusqlite::Result<()> {
        let Some(max) = self.max_bytes else {
            return Ok(());
        };
        let bytes = (counters.bytes.load(Ordering::Relaxed) as i64 + delta.1).max(0) as u64;
        if bytes <= max {
            return Ok(());
        }
        let (events, removed) = prune(tx, &self.protected, bytes, max / 10 * 9)?;
        delta.0 -= events;
        delta.1 -= removed;
        info!(
            events,
            bytes = removed,
            "pruned the oldest events to stay under the size bound"
        );
        Ok(())
    }
}

/// Wraps a reply so it is sent after the commit: the result stands only if the commit did.
fn answer<T: Send + 'static>(reply: Reply<T>, outcome: Result<T, StoreError>) -> Deferred {
    Box::new(move |failure| {
        let sent = match failure {
            Some(e) => Err(StoreError::Corrupt(format!("commit failed: {e}"))),
            None => outcome,
        };
        let _ = reply.send(sent);
    })
}

fn save_all(
    tx: &mut Transaction,
    events: &[Arc<RenderedEvent>],
    delta: &mut (i64, i64),
) -> Result<Vec<SaveOutcome>, StoreError> {
    let sp = tx.savepoint()?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut local = (0i64, 0i64);
    for event in events {
        let applied = insert::apply(&sp, event)?;
        local.0 += applied.events;
        local.1 += applied.bytes;
        outcomes.push(applied.outcome);
    }
    sp.commit()?;
    delta.0 += local.0;
    delta.1 += local.1;
    Ok(outcomes)
}

fn remove_expired(tx: &Transaction, now: i64, delta: &mut (i64, i64)) -> Result<u64, StoreError> {
    let seqs: Vec<i64> = tx
        .prepare_cached("SELECT seq FROM event WHERE expires_at IS NOT NULL AND expires_at < ?1")?
        .query_map([now], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in &seqs {
        let (events, bytes) = delete_by_seq(tx, *seq)?;
        delta.0 -= events;
        delta.1 -= bytes;
    }
    Ok(seqs.len() as u64)
}

/// Writes the totals after applying `delta` and returns them (events, bytes).
fn store_stats(
    tx: &Transaction,
    counters: &Counters,
    delta: (i64, i64),
) -> rusqlite::Result<(u64, u64)> {
    let events = (counters.events.load(Ordering::Relaxed) as i64 + delta.0).max(0);
    let bytes = (counters.bytes.load(Ordering::Relaxed) as i64 + delta.1).max(0);
    if delta != (0, 0) {
        tx.prepare_cached("UPDATE stats SET events = ?1, bytes = ?2 WHERE id = 0")?
            .execute(params![events, bytes])?;
    }
    Ok((events as u64, bytes as u64))
}

/// Deletes the oldest events of unprotected authors until `bytes` (the stored bytes) is at
/// most `target`. Returns (events, bytes) removed.
fn prune(
    tx: &Connection,
    protected: &HashSet<PublicKey>,
    mut bytes: u64,
    target: u64,
) -> rusqlite::Result<(i64, i64)> {
    let mut removed = (0i64, 0i64);
    let mut after = (i64::MIN, i64::MIN);
    while bytes > target {
        let page: Vec<(i64, i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT seq, created_at, pubkey FROM event WHERE (created_at, seq) > (?1, ?2)
                 ORDER BY created_at ASC, seq ASC LIMIT 512",
            )?
            .query_map(params![after.0, after.1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some(last) = page.last() else { break };
        after = (last.1, last.0);
        for (seq, _, pubkey) in page {
            let keep = PublicKey::from_slice(&pubkey).is_ok_and(|pk| protected.contains(&pk));
            if keep {
                continue;
            }
            let (events, size) = delete_by_seq(tx, seq)?;
            removed.0 += events;
            removed.1 += size;
            bytes = bytes.saturating_sub(size as u64);
            if bytes <= target {
                break;
            }
        }
    }
    Ok(removed)
}

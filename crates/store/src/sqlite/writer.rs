//! The single writer: a dedicated thread that owns the one writable connection. It takes
//! whatever requests are queued, applies them in one transaction, commits once, then
//! answers every request. Batching turns many small commits into one fsync-free WAL
//! append. Before the commit it prunes when the size bound is exceeded.
//!
//! While requests keep arriving it gathers them for a moment before committing (see
//! [`gather`]): each commit writes the last page of the table and of every index again,
//! and the pages of the id index that its events land on, so a commit of hundreds of
//! events writes far fewer pages per event than one of a few dozen. A request that finds
//! the queue quiet is committed at once. WAL checkpoints run on a thread of their own
//! ([`super::checkpoint`]).
//!
//! One failing request must not sink the others. A savepoint per request would ensure
//! that, but inside a savepoint SQLite first copies every page a write touches into a
//! sub-journal — for an event, a page of the table and of each index — a sizeable part of
//! the insert's cost. Failures are rare, so a batch is first applied without savepoints;
//! if any request fails, that attempt is rolled back and the batch is applied again with
//! a savepoint per save request, giving the answers a savepoint per request always gave.
//!
//! A batch that cannot be committed (a full disk, an I/O error) is rolled back whole:
//! every waiter of that batch gets the error, none of it is acknowledged, and the thread
//! goes on with the next batch, which is tried afresh. A full disk is logged once when it
//! starts refusing writes and once when writes succeed again.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, Transaction};
use starling_proto::{PublicKey, RenderedEvent};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::checkpoint::WalWatch;
use super::insert::{self, delete_by_seq};
use crate::queue::{answer_all, Counters, Outcomes, WriteCmd};
use crate::{SaveOutcome, StoreError, StoreOptions};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Events after which a commit stops gathering.
const GATHER_EVENTS: usize = 512;
/// How long a commit gathers at most after its first request arrived.
const GATHER_WINDOW: Duration = Duration::from_millis(10);
/// The pause between looks at the queue while gathering.
const GATHER_TICK: Duration = Duration::from_millis(1);

pub struct Writer {
    conn: Connection,
    counters: Arc<Counters>,
    bound: Bound,
    /// Whether the last batch failed on a full disk (so the state change is logged once).
    full: bool,
    /// The checkpoint thread, once started.
    wal: Option<WalWatch>,
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
            full: false,
            wal: None,
        })
    }

    /// Moves WAL checkpoints to a thread of their own, with a connection to `path`.
    pub fn checkpoint_beside(&mut self, path: &Path) -> std::io::Result<()> {
        self.wal = Some(WalWatch::start(&mut self.conn, path)?);
        Ok(())
    }

    /// The writer loop; returns when every sender is gone or on `Shutdown`.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriteCmd>) {
        while let Some(first) = rx.blocking_recv() {
            let batch = gather(first, &mut rx);
            if let Some(done) = self.process(batch) {
                self.finish();
                let _ = done.send(());
                return;
            }
        }
        self.finish();
    }

    /// Stops the checkpoint thread, then copies the whole WAL into the database and
    /// empties it.
    fn finish(&mut self) {
        if let Some(wal) = self.wal.take() {
            wal.stop(&mut self.conn);
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            warn!(error = %e, "WAL checkpoint failed");
        }
    }

    /// Applies a batch; returns the shutdown reply if the batch asked to stop.
    fn process(&mut self, batch: Vec<WriteCmd>) -> Option<oneshot::Sender<()>> {
        let result = self.attempt(&batch, false).or_else(|e| {
            if disk_failure(&e) {
                // Not one request's fault: applying them one by one would only fail again.
                return Err(e);
            }
            debug!(error = %e, "a write failed; applying the batch again, isolating each request");
            self.attempt(&batch, true)
        });
        let (outcomes, failure) = match result {
            Ok((outcomes, (events, bytes))) => {
                self.counters.events.store(events, Ordering::Relaxed);
                self.counters.bytes.store(bytes, Ordering::Relaxed);
                self.note_full(false, None);
                (outcomes, None)
            }
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_full() {
                    self.note_full(true, Some(&e));
                } else {
                    warn!(error = %e, "write batch failed and was rolled back");
                }
                (Outcomes::default(), Some(e))
            }
        };
        answer_all(batch, outcomes, failure.as_ref())
    }

    /// Logs when the disk becomes full (writes are refused from then on) and when a batch
    /// commits again after that.
    fn note_full(&mut self, full: bool, error: Option<&StoreError>) {
        match (self.full, full) {
            (false, true) => warn!(
                error = %error.map(ToString::to_string).unwrap_or_default(),
                "storage full: refusing writes until space is freed on the store's disk"
            ),
            (true, true) => debug!("storage still full: a write batch was refused"),
            (true, false) => info!("storage has room again: writes resume"),
            (false, false) => {}
        }
        self.full = full;
    }

    /// Applies `batch` in one transaction and commits it; returns each request's outcome
    /// and the new totals (events, bytes). With `isolate` each save runs in a savepoint
    /// and a failure is that request's outcome; without, any failure fails (and rolls
    /// back) the whole attempt.
    fn attempt(
        &mut self,
        batch: &[WriteCmd],
        isolate: bool,
    ) -> rusqlite::Result<(Outcomes, (u64, u64))> {
        let mut delta = (0i64, 0i64);
        let mut outcomes = Outcomes::default();
        let mut tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for cmd in batch {
            match cmd {
                WriteCmd::Save(events, _) if isolate => {
                    let saved = save_isolated(&mut tx, events, &mut delta);
                    outcomes.saves.push_back(saved);
                }
                WriteCmd::Save(events, _) => {
                    let saved = save_all(&tx, events, &mut delta)?;
                    outcomes.saves.push_back(Ok(saved));
                }
                WriteCmd::RemoveExpired(now, _) if isolate => {
                    let removed = remove_expired(&tx, *now, &mut delta);
                    outcomes
                        .removals
                        .push_back(removed.map_err(StoreError::from));
                }
                WriteCmd::RemoveExpired(now, _) => {
                    let removed = remove_expired(&tx, *now, &mut delta)?;
                    outcomes.removals.push_back(Ok(removed));
                }
                WriteCmd::Shutdown(_) => {}
            }
        }
        self.bound
            .prune_if_needed(&tx, &self.counters, &mut delta)?;
        let totals = store_stats(&tx, &self.counters, delta)?;
        tx.commit()?;
        Ok((outcomes, totals))
    }
}

/// The requests for one transaction: `first`, what is queued behind it, and, while more
/// keep arriving, what arrives in the next few [`GATHER_TICK`]s, up to [`GATHER_EVENTS`]
/// events or [`GATHER_WINDOW`]. Stops at the first look that finds nothing new, so a
/// request on a quiet queue waits for nothing.
fn gather(first: WriteCmd, rx: &mut mpsc::Receiver<WriteCmd>) -> Vec<WriteCmd> {
    let started = Instant::now();
    let mut events = events_of(&first);
    let mut batch = vec![first];
    loop {
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => {
                    events += events_of(&cmd);
                    batch.push(cmd);
                }
                Err(_) => break,
            }
        }
        let full = events >= GATHER_EVENTS || batch.len() >= MAX_BATCH;
        if batch.len() == before || full || started.elapsed() >= GATHER_WINDOW {
            return batch;
        }
        std::thread::sleep(GATHER_TICK);
    }
}

/// Events a request saves.
fn events_of(cmd: &WriteCmd) -> usize {
    match cmd {
        WriteCmd::Save(events, _) => events.len(),
        WriteCmd::RemoveExpired(..) | WriteCmd::Shutdown(_) => 0,
    }
}

/// Whether `e` is the disk's failure (full, or an I/O error) rather than a request's.
fn disk_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
    )
}

/// The outcome of each request of a batch, by kind, in the batch's order.
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

/// Answers a request once its batch is settled: with its own outcome (the next of
/// `outcomes`) if the batch committed, else with the batch's `failure`.
/// Applies `events` inside the caller's transaction; stops at the first failure.
fn save_all(
    tx: &Connection,
    events: &[Arc<RenderedEvent>],
    delta: &mut (i64, i64),
) -> rusqlite::Result<Vec<SaveOutcome>> {
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let applied = insert::apply(tx, event)?;
        delta.0 += applied.events;
        delta.1 += applied.bytes;
        outcomes.push(applied.outcome);
    }
    Ok(outcomes)
}

/// As [`save_all`], in a savepoint: on failure nothing of `events` is kept.
fn save_isolated(
    tx: &mut Transaction,
    events: &[Arc<RenderedEvent>],
    delta: &mut (i64, i64),
) -> Result<Vec<SaveOutcome>, StoreError> {
    let sp = tx.savepoint()?;
    let mut local = (0i64, 0i64);
    let outcomes = save_all(&sp, events, &mut local)?;
    sp.commit()?;
    delta.0 += local.0;
    delta.1 += local.1;
    Ok(outcomes)
}

fn remove_expired(tx: &Transaction, now: i64, delta: &mut (i64, i64)) -> rusqlite::Result<u64> {
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

#[cfg(test)]
mod tests {
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind};

    use super::*;
    use crate::sqlite::schema;

    fn save_cmd(keys: &Keys, content: &str) -> (WriteCmd, oneshot::Receiver<SaveResult>) {
        let event = EventBuilder::new(Kind::TextNote, content)
            .finalize(keys)
            .unwrap();
        let (reply, answer) = oneshot::channel();
        let cmd = WriteCmd::Save(vec![Arc::new(RenderedEvent::new(event))], reply);
        (cmd, answer)
    }

    type SaveResult = Result<Vec<SaveOutcome>, StoreError>;

    #[test]
    fn a_failing_request_does_not_sink_the_batch() {
        let conn = Connection::open_in_memory().unwrap();
        schema::migrate(&conn).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON event WHEN NEW.json LIKE '%boom%'
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
        )
        .unwrap();
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(conn, counters.clone(), &StoreOptions::default()).unwrap();
        let keys = Keys::generate();
        let (cmds, mut answers): (Vec<_>, Vec<_>) = ["one", "boom", "three"]
            .iter()
            .map(|c| save_cmd(&keys, c))
            .unzip();
        assert!(writer.process(cmds).is_none());
        let got: Vec<SaveResult> = answers.iter_mut().map(|a| a.try_recv().unwrap()).collect();
        assert!(matches!(got[0].as_deref(), Ok([SaveOutcome::Stored])));
        assert!(matches!(got[1], Err(StoreError::Sqlite(_))));
        assert!(matches!(got[2].as_deref(), Ok([SaveOutcome::Stored])));
        assert_eq!(counters.events.load(Ordering::Relaxed), 2);
        let stored: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM event", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 2);
    }

    fn stored(writer: &Writer) -> i64 {
        writer
            .conn
            .query_row("SELECT count(*) FROM event", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_full_disk_refuses_the_batch_and_the_next_batch_is_tried_afresh() {
        let conn = Connection::open_in_memory().unwrap();
        schema::migrate(&conn).unwrap();
        let counters = Arc::new(Counters::default());
        let mut writer = Writer::new(conn, counters.clone(), &StoreOptions::default()).unwrap();
        // Cap the database at its current size: SQLite then answers any write that needs
        // a new page with SQLITE_FULL, as it does when the disk is full.
        let pages: i64 = writer
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        writer
            .conn
            .execute_batch(&format!("PRAGMA max_page_count = {pages};"))
            .unwrap();
        let keys = Keys::generate();
        let big = "x".repeat(20_000);
        let (cmds, mut answers): (Vec<_>, Vec<_>) = ["one", "two", "three"]
            .iter()
            .map(|c| save_cmd(&keys, &format!("{c} {big}")))
            .unzip();
        assert!(writer.process(cmds).is_none());
        for answer in &mut answers {
            let got = answer.try_recv().unwrap();
            assert!(matches!(got, Err(StoreError::Full(_))), "{got:?}");
            let message = got.unwrap_err().to_string();
            assert!(message.starts_with("storage full: "), "{message}");
        }
        assert_eq!(stored(&writer), 0, "nothing of a refused batch is kept");
        assert_eq!(counters.events.load(Ordering::Relaxed), 0);
        assert!(writer.full);

        // Space returns: the next batch is committed without any reset.
        writer
            .conn
            .execute_batch("PRAGMA max_page_count = 1073741823;")
            .unwrap();
        let (cmd, mut answer) = save_cmd(&keys, &format!("after {big}"));
        assert!(writer.process(vec![cmd]).is_none());
        assert!(matches!(
            answer.try_recv().unwrap().as_deref(),
            Ok([SaveOutcome::Stored])
        ));
        assert_eq!(stored(&writer), 1);
        assert_eq!(counters.events.load(Ordering::Relaxed), 1);
        assert!(!writer.full);
    }

    #[test]
    fn a_request_on_a_quiet_queue_is_committed_alone() {
        let keys = Keys::generate();
        let (_tx, mut rx) = mpsc::channel(8);
        let (first, _answer) = save_cmd(&keys, "alone");
        let batch = gather(first, &mut rx);
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn queued_requests_join_the_batch_up_to_its_cap() {
        let keys = Keys::generate();
        let (tx, mut rx) = mpsc::channel(2 * MAX_BATCH);
        let mut answers = Vec::new();
        for i in 0..MAX_BATCH + 5 {
            let (cmd, answer) = save_cmd(&keys, &format!("queued {i}"));
            tx.try_send(cmd).ok().unwrap();
            answers.push(answer);
        }
        let (first, _answer) = save_cmd(&keys, "first");
        let batch = gather(first, &mut rx);
        assert_eq!(
            batch.len(),
            MAX_BATCH,
            "the first and all but six of the queued"
        );
        let rest = gather(rx.try_recv().ok().unwrap(), &mut rx);
        assert_eq!(rest.len(), 6, "the rest wait for the next batch");
    }
}

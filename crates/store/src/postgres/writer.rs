//! The single writer: a tokio task that owns the one writing connection. It drains
//! whatever requests are queued, applies them in one transaction, commits once, then
//! answers every request, so concurrent saves share a commit (and its WAL flush) instead
//! of paying one each. Before the commit it prunes when the size bound is exceeded.
//!
//! Every write transaction first takes a transaction-level advisory lock, so several
//! starling processes on one database (a node and `starling import`) still write one at a
//! time and the replaceable and deletion rules hold across them. The totals live in the
//! `stats` row and are updated by difference, so they stay right across processes too.
//!
//! One failing request must not sink the others. In PostgreSQL a failed statement aborts
//! the whole transaction, so, as in the SQLite writer, a batch is first applied without
//! savepoints; if anything fails the attempt is rolled back and the batch applied again
//! with a savepoint per request. A lost connection is opened again at the next batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Config, Transaction};
use tracing::{debug, info, warn};

use super::connect::connect;
use super::insert::{self, delete_events, Statements};
use super::schema::WRITE_LOCK;
use crate::queue::{answer_all, Counters, Outcomes, WriteCmd};
use crate::{SaveOutcome, StoreError, StoreOptions};

/// Most requests applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Rows the pruning pass reads at a time.
const PRUNE_PAGE: i64 = 512;

/// The writing connection and its prepared statements.
struct Conn {
    client: Client,
    st: Statements,
}

pub struct Writer {
    config: Config,
    conn: Option<Conn>,
    counters: Arc<Counters>,
    max_bytes: Option<u64>,
    /// Authors pruning spares, as stored (32-byte keys).
    protected: Vec<Vec<u8>>,
}

impl Writer {
    /// Connects, prepares the statements and reads the totals.
    pub async fn start(
        config: Config,
        counters: Arc<Counters>,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let mut writer = Self {
            config,
            conn: None,
            counters,
            max_bytes: options.max_bytes,
            protected: options
                .protected_authors
                .iter()
                .map(|pk| pk.as_bytes().to_vec())
                .collect(),
        };
        let conn = writer.connection().await?;
        let row = conn
            .client
            .query_one("SELECT events, bytes FROM stats WHERE id = 0", &[])
            .await?;
        writer.set_totals((row.get(0), row.get(1)));
        Ok(writer)
    }

    /// The writing connection, opened again if the server dropped it.
    async fn connection(&mut self) -> Result<&mut Conn, StoreError> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            let client = connect(&self.config).await?;
            let st = Statements::prepare(&client).await?;
            self.conn = Some(Conn { client, st });
        }
        Ok(self.conn.as_mut().expect("connection just opened"))
    }

    fn set_totals(&self, (events, bytes): (i64, i64)) {
        self.counters
            .events
            .store(events.max(0) as u64, Ordering::Relaxed);
        self.counters
            .bytes
            .store(bytes.max(0) as u64, Ordering::Relaxed);
    }

    /// The writer loop; returns when every sender is gone or on `Shutdown`.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WriteCmd>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if let Some(done) = self.process(batch).await {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Applies a batch; returns the shutdown reply if the batch asked to stop.
    async fn process(&mut self, batch: Vec<WriteCmd>) -> Option<oneshot::Sender<()>> {
        let result = match self.attempt(&batch, false).await {
            Ok(done) => Ok(done),
            Err(e) => {
                debug!(error = %e, "a write failed; applying the batch again, isolating each request");
                self.attempt(&batch, true).await
            }
        };
        let (outcomes, failure) = match result {
            Ok((outcomes, totals)) => {
                self.set_totals(totals);
                (outcomes, None)
            }
            Err(e) => {
                warn!(error = %e, "write batch failed and was rolled back");
                (Outcomes::default(), Some(e))
            }
        };
        answer_all(batch, outcomes, failure.as_ref())
    }

    /// Applies `batch` in one transaction and commits it; returns each request's outcome
    /// and the new totals (events, bytes). With `isolate` each request runs in a savepoint
    /// and a failure is that request's outcome; without, any failure fails (and rolls
    /// back) the whole attempt.
    async fn attempt(
        &mut self,
        batch: &[WriteCmd],
        isolate: bool,
    ) -> Result<(Outcomes, (i64, i64)), StoreError> {
        let (max_bytes, protected) = (self.max_bytes, self.protected.clone());
        let Conn { client, st } = self.connection().await?;
        let mut tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await?;
        let mut delta = (0i64, 0i64);
        let mut outcomes = Outcomes::default();
        for cmd in batch {
            let request = match cmd {
                WriteCmd::Shutdown(_) => continue,
                WriteCmd::Save(..) | WriteCmd::RemoveExpired(..) if !isolate => {
                    run_request(&tx, st, cmd, &mut delta).await?
                }
                _ => {
                    let sp = tx.savepoint("request").await?;
                    let mut local = (0i64, 0i64);
                    match run_request(&sp, st, cmd, &mut local).await {
                        Ok(done) => {
                            sp.commit().await?;
                            delta.0 += local.0;
                            delta.1 += local.1;
                            done
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            Done::failed(cmd, e)
                        }
                    }
                }
            };
            outcomes.push(request);
        }
        let mut totals = add_totals(&tx, delta).await?;
        if let Some(max) = max_bytes.filter(|max| totals.1.max(0) as u64 > *max) {
            let removed = prune(&tx, st, &protected, totals.1, (max / 10 * 9) as i64).await?;
            info!(
                events = removed.0,
                bytes = removed.1,
                "pruned the oldest events to stay under the size bound"
            );
            totals = add_totals(&tx, (-removed.0, -removed.1)).await?;
        }
        tx.commit().await?;
        Ok((outcomes, totals))
    }
}

/// One request's result inside an attempt.
enum Done {
    Saved(Result<Vec<SaveOutcome>, StoreError>),
    Removed(Result<u64, StoreError>),
}

impl Done {
    fn failed(cmd: &WriteCmd, e: StoreError) -> Self {
        match cmd {
            WriteCmd::RemoveExpired(..) => Done::Removed(Err(e)),
            _ => Done::Saved(Err(e)),
        }
    }
}

/// Applies one save or expiry request inside `tx`, adding its changes to `delta`.
async fn run_request(
    tx: &Transaction<'_>,
    st: &Statements,
    cmd: &WriteCmd,
    delta: &mut (i64, i64),
) -> Result<Done, StoreError> {
    match cmd {
        WriteCmd::Save(events, _) => {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let applied = insert::apply(tx, st, event).await?;
                delta.0 += applied.events;
                delta.1 += applied.bytes;
                outcomes.push(applied.outcome);
            }
            Ok(Done::Saved(Ok(outcomes)))
        }
        WriteCmd::RemoveExpired(now, _) => {
            let rows = tx
                .query(
                    "SELECT seq FROM event WHERE expires_at IS NOT NULL AND expires_at < $1",
                    &[now],
                )
                .await?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            let (events, bytes) = delete_events(tx, st, &seqs).await?;
            delta.0 -= events;
            delta.1 -= bytes;
            Ok(Done::Removed(Ok(events as u64)))
        }
        WriteCmd::Shutdown(_) => Ok(Done::Removed(Ok(0))),
    }
}

/// The outcome of each request of a batch, by kind, in the batch's order.
impl Outcomes {
    fn push(&mut self, done: Done) {
        match done {
            Done::Saved(r) => self.saves.push_back(r),
            Done::Removed(r) => self.removals.push_back(r),
        }
    }
}

/// Answers a request once its batch is settled: with its own outcome (the next of
/// `outcomes`) if the batch committed, else with the batch's `failure`.
/// Adds `delta` to the stored totals and returns them (events, bytes).
async fn add_totals(tx: &Transaction<'_>, delta: (i64, i64)) -> Result<(i64, i64), StoreError> {
    let row = tx
        .query_one(
            "UPDATE stats SET events = events + $1, bytes = bytes + $2 WHERE id = 0
             RETURNING events, bytes",
            &[&delta.0, &delta.1],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Deletes the oldest events of unprotected authors until `bytes` (the stored bytes) is at
/// most `target`. Returns (events, bytes) removed.
async fn prune(
    tx: &Transaction<'_>,
    st: &Statements,
    protected: &[Vec<u8>],
    mut bytes: i64,
    target: i64,
) -> Result<(i64, i64), StoreError> {
    let mut removed = (0i64, 0i64);
    let mut after = (i64::MIN, i64::MIN);
    while bytes > target {
        let page = tx
            .query(
                "SELECT seq, created_at, octet_length(json)::int8 FROM event
                 WHERE (created_at, seq) > ($1, $2) AND NOT (pubkey = ANY($3))
                 ORDER BY created_at ASC, seq ASC LIMIT $4",
                &[&after.0, &after.1, &protected, &PRUNE_PAGE],
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = (last.get(1), last.get(0));
        let mut doomed = Vec::new();
        let mut left = bytes;
        for row in &page {
            if left <= target {
                break;
            }
            doomed.push(row.get::<_, i64>(0));
            left -= row.get::<_, i64>(2);
        }
        let (events, size) = delete_events(tx, st, &doomed).await?;
        removed.0 += events;
        removed.1 += size;
        bytes -= size;
    }
    Ok(removed)
}

//! Catch-up after downtime: the node reconciles (negentropy, see [`crate::reconcile`]) a
//! window of a followed author's events, or of its own inbox, with home-set members and
//! fetches only the events it lacks. The window starts a week before the newest event
//! the node holds for that filter (so late and out-of-order events within it are found
//! too); with nothing held it is the newest [`FIRST_LIMIT`] events.
//!
//! [`Progress`] counts the work across all catch-ups for `status` and for the progress
//! lines in the log that long syncs show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use starling_core::Ingest;
use starling_proto::{Event, Filter, Timestamp};
use starling_store::EventStore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::event_times;
use crate::handle::Network;
use crate::homeset::Member;
use crate::reconcile;
use crate::NetError;

/// How far before the newest held event a reconciliation window starts.
pub const WINDOW_SECS: u64 = 7 * 24 * 3600;
/// Events compared when the node holds nothing for a filter yet.
pub const FIRST_LIMIT: usize = 500;
/// Between two progress lines.
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Missing events from which a catch-up counts as long and shows progress.
const LONG: u64 = 200;

/// Counters of the catch-ups in flight, shared by the tasks that run them.
#[derive(Debug, Default)]
pub struct Progress {
    in_flight: AtomicU64,
    missing: AtomicU64,
    fetched: AtomicU64,
    reconcile_bytes: AtomicU64,
}

/// A snapshot of [`Progress`] for `status`: what the current catch-up (if any) found
/// missing and has fetched so far.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ProgressStatus {
    pub in_flight: u64,
    pub missing: u64,
    pub fetched: u64,
    pub reconcile_bytes: u64,
}

impl Progress {
    pub fn snapshot(&self) -> ProgressStatus {
        ProgressStatus {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            missing: self.missing.load(Ordering::Relaxed),
            fetched: self.fetched.load(Ordering::Relaxed),
            reconcile_bytes: self.reconcile_bytes.load(Ordering::Relaxed),
        }
    }

    /// Logs progress while a long catch-up runs and a summary when it ends; the counters
    /// start again from zero after each summary.
    pub async fn report(self: Arc<Self>, shutdown: CancellationToken) {
        let mut started: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REPORT_EVERY) => {}
            }
            let now = self.snapshot();
            if now.missing == 0 {
                continue;
            }
            let since = *started.get_or_insert_with(Instant::now);
            if now.in_flight > 0 {
                if now.missing >= LONG {
                    info!(
                        fetched = now.fetched,
                        missing = now.missing,
                        "catching up: {} of {} missing events fetched",
                        now.fetched,
                        now.missing
                    );
                }
                continue;
            }
            info!(
                fetched = now.fetched,
                missing = now.missing,
                negentropy_bytes = now.reconcile_bytes,
                "caught up: {} missing events fetched in about {:.1} s",
                now.fetched,
                since.elapsed().as_secs_f64()
            );
            self.missing.fetch_sub(now.missing, Ordering::Relaxed);
            self.fetched.fetch_sub(now.fetched, Ordering::Relaxed);
            self.reconcile_bytes
                .fetch_sub(now.reconcile_bytes, Ordering::Relaxed);
            started = None;
        }
    }
}

/// Marks one catch-up in flight for as long as it lives.
struct InFlight<'a>(&'a Progress);

impl<'a> InFlight<'a> {
    fn new(p: &'a Progress) -> Self {
        p.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(p)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a catch-up needs.
#[derive(Clone)]
pub struct CatchUp {
    pub net: Network,
    pub store: Arc<dyn EventStore>,
    pub ingest: Arc<Ingest>,
    pub progress: Arc<Progress>,
}

impl CatchUp {
    /// The window of `base` to reconcile (see the module docs).
    pub async fn window(&self, base: Filter) -> Filter {
        let newest = event_times::newest_stored(self.store.as_ref(), base.clone()).await;
        if newest == 0 {
            base.limit(FIRST_LIMIT)
        } else {
            base.since(Timestamp::from(newest.saturating_sub(WINDOW_SECS)))
        }
    }

    /// Reconciles `filter` with `member` and fetches what this node lacks, ingesting the
    /// events `check` accepts. Returns how many were newly stored.
    pub async fn with_member(
        &self,
        member: &Member,
        filter: &Filter,
        check: impl Fn(&Event) -> Result<(), String>,
    ) -> Result<usize, NetError> {
        let _in_flight = InFlight::new(&self.progress);
        let diff = reconcile::reconcile(&self.net, member, self.store.as_ref(), filter).await?;
        self.progress
            .reconcile_bytes
            .fetch_add(diff.bytes, Ordering::Relaxed);
        if diff.need.is_empty() {
            return Ok(0);
        }
        debug!(peer = %member.peer, need = diff.need.len(), rounds = diff.rounds, "reconciled");
        self.progress
            .missing
            .fetch_add(diff.need.len() as u64, Ordering::Relaxed);
        let stored = reconcile::pull(&self.net, member, &self.ingest, &diff.need, &check, |n| {
            self.progress.fetched.fetch_add(n as u64, Ordering::Relaxed);
        })
        .await?;
        Ok(stored)
    }
}

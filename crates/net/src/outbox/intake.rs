//! The outbox's intake: it takes the owner's new events off the bus and queues them in
//! `outbox.db`, rescans the store after a restart or when the bus outran it, and moves the
//! stored cursor.
//!
//! It runs on a thread of its own (with a one-task runtime), not among the node's tasks:
//! during a burst of ingest both cores verify signatures, and a task queued behind that
//! work fell so far behind the bus that it rescanned the store over and over. A thread is
//! scheduled by the kernel, which keeps it close to the bus however busy the runtime is.

use std::sync::Arc;
use std::time::Duration;

use starling_core::LiveEvent;
use starling_proto::{Event, Filter, KindClass, Timestamp};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cursor::CursorState;
use super::{db, home_target, now, recipients, OutboxTask, Queued};

/// How often the intake looks for more events while a burst goes on. A commit costs more
/// than a few rows (it writes the last page of the table and of its index again, and a
/// page of the index for each target it touches), so during a burst of ingest it queues
/// one commit per many events; a lone event waits one look.
const GATHER_TICK: Duration = Duration::from_millis(2);
/// How long the intake gathers one burst at most: delivery is late by as much, which no
/// peer notices.
const GATHER_MAX: Duration = Duration::from_millis(50);
/// Events queued in one `outbox.db` commit at most.
const ENQUEUE_BATCH: usize = 1024;
/// How far back a rescan starts before the cursor.
const RESCAN_OVERLAP: u64 = 600;
/// Events read from the store per query of a rescan (the store's cap on one query).
const RESCAN_PAGE: usize = 5000;

/// Starts the intake on its own thread; `bus` was subscribed before anything it must
/// see was published.
pub(super) fn spawn(
    task: Arc<OutboxTask>,
    bus: broadcast::Receiver<Arc<LiveEvent>>,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("outbox-intake".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return warn!(error = %e, "cannot start the outbox intake"),
            };
            runtime.block_on(task.intake(bus, shutdown));
        })
}

impl OutboxTask {
    /// Runs the intake until shutdown.
    pub(super) async fn intake(
        &self,
        mut bus: broadcast::Receiver<Arc<LiveEvent>>,
        shutdown: CancellationToken,
    ) {
        let mut cursor = CursorState::default();
        self.rescan(&mut cursor).await;
        let mut cursor_tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                item = bus.recv() => match item {
                    Ok(first) => {
                        // What else comes on the bus meanwhile goes in the same commit.
                        let (batch, lagged) = gather(first, &mut bus).await;
                        self.enqueue_live(&batch, &mut cursor).await;
                        if lagged {
                            self.catch_up(&mut bus, &mut cursor).await;
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.catch_up(&mut bus, &mut cursor).await,
                    Err(RecvError::Closed) => break,
                },
                // The cursor moves in the background: a crash loses at most a few seconds
                // of it, and the rescan overlaps by more than that.
                _ = cursor_tick.tick(), if cursor.seen_max > 0 || cursor.unqueued.is_some() => {
                    self.tick_cursor(&mut cursor).await;
                }
            }
        }
    }

    /// Queues the owner's events among `batch` (fresh from the bus) and notes them in the
    /// cursor.
    async fn enqueue_live(&self, batch: &[Arc<LiveEvent>], cursor: &mut CursorState) {
        let own: Vec<_> = batch
            .iter()
            .filter(|live| live.event.pubkey == self.owner)
            .collect();
        if own.is_empty() {
            return;
        }
        let queued = self.enqueue(own.iter().map(|live| &live.event)).await;
        for live in own {
            cursor.seen(live.event.created_at.as_secs(), queued);
        }
    }

    /// Queues each of the owner's `events` for its recipients, in one commit; false if
    /// `outbox.db` refused the rows.
    async fn enqueue<'a>(&self, events: impl Iterator<Item = &'a Event>) -> bool {
        let batch: Vec<Queued> = events.filter_map(|event| self.queued(event)).collect();
        if batch.is_empty() {
            return true;
        }
        let count = batch.len();
        let started = std::time::Instant::now();
        match self.db.enqueue(batch, now()).await {
            Ok(0) => {}
            Ok(rows) => {
                debug!(events = count, rows, took = ?started.elapsed(), "queued for delivery");
                self.wake.notify_one();
            }
            Err(e) => {
                warn!(events = count, error = %e, "cannot queue events for delivery; trying again shortly");
                return false;
            }
        }
        true
    }

    /// The rows `event` needs: its author's home set, and each recipient and the
    /// recipient's home set. None when it goes nowhere. The JSON stays in the event store
    /// (see `load`).
    fn queued(&self, event: &Event) -> Option<Queued> {
        let mut targets = Vec::new();
        if KindClass::of(event.kind) != KindClass::Ephemeral {
            targets.push(home_target(&self.owner));
        }
        for pk in recipients(event) {
            targets.push(pk.to_hex());
            targets.push(home_target(&pk));
        }
        (!targets.is_empty()).then(|| Queued {
            at: event.created_at.as_secs() as i64,
            event_id: event.id.to_hex(),
            json: String::new(),
            targets,
        })
    }

    /// Queues again what `outbox.db` refused before, then moves the cursor, never past an
    /// event that is not queued.
    async fn tick_cursor(&self, cursor: &mut CursorState) {
        if let Some(since) = cursor.unqueued {
            if self.queue_since(since).await {
                info!("queued the owner's events that outbox.db refused before");
                cursor.unqueued = None;
            }
        }
        let upto = cursor.upto();
        if upto == 0 {
            return;
        }
        match self.db.set_cursor(upto).await {
            Ok(()) if upto == cursor.seen_max => cursor.seen_max = 0,
            Ok(()) => {}
            Err(e) => warn!(error = %e, "cannot move the outbox cursor"),
        }
    }

    /// After the bus outran the task: takes the bus from its newest event on, then queues
    /// what the store holds since the cursor, which covers every event missed. The events
    /// still waiting in the old receiver are all in the store, so reading them as well
    /// would only redo that work, and a task behind the bus would stay behind.
    async fn catch_up(
        &self,
        bus: &mut broadcast::Receiver<Arc<LiveEvent>>,
        cursor: &mut CursorState,
    ) {
        *bus = bus.resubscribe();
        self.rescan(cursor).await;
    }

    /// Queues the owner's events since the cursor (after a restart or a lagging bus).
    async fn rescan(&self, cursor: &mut CursorState) {
        let since = match self.db.cursor().await {
            Ok(c) => c.saturating_sub(RESCAN_OVERLAP),
            Err(e) => return warn!(error = %e, "cannot read the outbox cursor"),
        };
        if !self.queue_since(since).await {
            cursor.refused(since);
        }
    }

    /// Queues the owner's stored events created at or after `since`, oldest first, and
    /// moves the cursor to the newest. Stops at the first that `outbox.db` refuses and
    /// returns false.
    async fn queue_since(&self, since: u64) -> bool {
        let mut until: Option<Timestamp> = None;
        let mut newest = None;
        let mut total = 0;
        loop {
            let mut filter = Filter::new()
                .author(self.owner)
                .since(Timestamp::from(since))
                .limit(RESCAN_PAGE);
            if let Some(until) = until {
                filter = filter.until(until);
            }
            let page = match self.store.query(vec![filter]).await {
                Ok(events) => events,
                Err(e) => {
                    warn!(error = %e, "cannot rescan the owner's events");
                    return false;
                }
            };
            let (Some(first), Some(last)) = (page.first(), page.last()) else {
                break;
            };
            newest.get_or_insert(first.created_at);
            let oldest = last.created_at;
            let oldest_first: Vec<_> = page.iter().rev().collect();
            for chunk in oldest_first.chunks(ENQUEUE_BATCH) {
                if !self.enqueue(chunk.iter().copied()).await {
                    // The rest would most likely fail the same way (a full disk): next tick.
                    return false;
                }
            }
            total += page.len();
            if page.len() < RESCAN_PAGE {
                break;
            }
            // The next page ends at this page's oldest second (events sharing it may have
            // been cut off; queuing them twice is harmless), or just before it when the
            // whole page was that one second.
            until = Some(match until {
                Some(u) if u == oldest => Timestamp::from(oldest.as_secs().saturating_sub(1)),
                _ => oldest,
            });
            if until.is_some_and(|u| u.as_secs() < since) {
                break;
            }
        }
        info!(
            since,
            events = total,
            "outbox: rescanned the owner's recent events"
        );
        if let Some(newest) = newest {
            db::log_failed_write(
                self.db.set_cursor(newest.as_secs()).await,
                "move the outbox cursor",
            );
        }
        true
    }
}

/// `first` and what else comes on the bus while a burst goes on: after each
/// [`GATHER_TICK`] the intake takes what arrived, and stops at a look that finds nothing,
/// after [`GATHER_MAX`], or at [`ENQUEUE_BATCH`] events. True as well when the receiver
/// lagged (missed events: the caller rescans).
async fn gather<T: Clone>(first: T, bus: &mut broadcast::Receiver<T>) -> (Vec<T>, bool) {
    let started = tokio::time::Instant::now();
    let mut batch = vec![first];
    loop {
        tokio::time::sleep(GATHER_TICK).await;
        let before = batch.len();
        while batch.len() < ENQUEUE_BATCH {
            match bus.try_recv() {
                Ok(item) => batch.push(item),
                Err(TryRecvError::Lagged(_)) => return (batch, true),
                Err(_) => break,
            }
        }
        let quiet = batch.len() == before;
        if quiet || batch.len() >= ENQUEUE_BATCH || started.elapsed() >= GATHER_MAX {
            return (batch, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::task::JoinHandle;
    use tokio::time::Instant;

    /// Sends 1, 2, … `n` on `tx`, one per half tick, until the receivers are gone.
    fn trickle(tx: broadcast::Sender<usize>, n: usize) -> JoinHandle<()> {
        tokio::spawn(async move {
            for i in 1..=n {
                tokio::time::sleep(GATHER_TICK / 2).await;
                if tx.send(i).is_err() {
                    break;
                }
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_event_goes_at_the_first_quiet_look() {
        let (tx, mut rx) = broadcast::channel(16);
        tx.send(1).unwrap();
        let first = rx.recv().await.unwrap();
        let started = Instant::now();
        let (batch, lagged) = gather(first, &mut rx).await;
        assert_eq!((batch, lagged), (vec![1], false));
        assert_eq!(started.elapsed(), GATHER_TICK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_gathered_up_to_the_cap() {
        let (tx, mut rx) = broadcast::channel(4 * ENQUEUE_BATCH);
        for i in 0..ENQUEUE_BATCH + 10 {
            tx.send(i).unwrap();
        }
        let first = rx.recv().await.unwrap();
        let (batch, lagged) = gather(first, &mut rx).await;
        assert!(!lagged);
        assert_eq!(batch, (0..ENQUEUE_BATCH).collect::<Vec<_>>());
        assert_eq!(rx.try_recv().unwrap(), ENQUEUE_BATCH);
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_keep_coming_are_gathered_across_looks() {
        let (tx, mut rx) = broadcast::channel(256);
        let sender = trickle(tx, 20);
        let started = Instant::now();
        let (batch, lagged) = gather(0, &mut rx).await;
        sender.await.unwrap();
        assert!(!lagged);
        assert_eq!(batch, (0..=20).collect::<Vec<_>>());
        // The last was sent at 20 ms: the look at 22 ms (or at 24 ms, when the look at
        // 20 ms came just before that send) found nothing more.
        let took = started.elapsed();
        assert!(
            took == GATHER_TICK * 11 || took == GATHER_TICK * 12,
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_never_pauses_goes_after_the_longest_wait() {
        let (tx, mut rx) = broadcast::channel(4096);
        let sender = trickle(tx, 1_000);
        let started = Instant::now();
        let (batch, _) = gather(0, &mut rx).await;
        sender.abort();
        assert_eq!(started.elapsed(), GATHER_MAX);
        // One per millisecond until 50 ms; the one sent at 50 ms may come after the look.
        assert!((50..=51).contains(&batch.len()), "{}", batch.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lagged_receiver_is_reported() {
        let (tx, mut rx) = broadcast::channel(4);
        tx.send(0).unwrap();
        let first = rx.recv().await.unwrap();
        for i in 1..10 {
            tx.send(i).unwrap();
        }
        let (_, lagged) = gather(first, &mut rx).await;
        assert!(lagged);
    }
}

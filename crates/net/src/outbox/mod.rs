//! The durable outbox. Every event of the owner goes to the owner's home set until a
//! quorum of its members took it (`home`); replies, mentions, reactions and reposts by
//! the owner also go straight to the node of every user they tag (`p` tags), found through
//! the DHT, directly or through a relay, and to each such user's home set (their inbox).
//! Undelivered ones stay in `outbox.db` and are retried with exponential backoff for up to
//! seven days (configurable), across restarts.
//!
//! The task watches the bus for the owner's new events; after a restart, or when the bus
//! outran it, it rescans the owner's recent events from the store (inserts are
//! idempotent). Lists (kind 3, other replaceable and addressable kinds) tag many people
//! without addressing them, so they go to the owner's home set only.

mod cursor;
pub mod db;
mod home;
mod wraps;

pub use home::{home_target, HOME_PREFIX};
pub use wraps::{queue_wrap, wrap_targets};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use starling_core::EventBus;
use starling_proto::{Event, Filter, KindClass, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{HomeSettings, OutboxSettings};
use crate::handle::Network;
use crate::policy::tagged_pubkeys;
use crate::wire::{Request, RequestBody, ResponseBody};

use cursor::CursorState;
pub use db::{Depth, OutboxDb};

/// Recipients per event at most.
const MAX_TARGETS: usize = 50;
/// Events per push at most.
const BATCH: usize = 100;
/// Recipients served at once.
const PARALLEL: usize = 8;
/// How far back a rescan starts before the cursor.
const RESCAN_OVERLAP: u64 = 600;

/// Who `event` is addressed to: its `p`-tagged users other than the author, unless the
/// event is a list.
pub fn recipients(event: &Event) -> Vec<PublicKey> {
    if KindClass::of(event.kind) != KindClass::Regular {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    tagged_pubkeys(event)
        .filter(|pk| *pk != event.pubkey && seen.insert(*pk))
        .take(MAX_TARGETS)
        .collect()
}

/// The delay before retry number `attempts + 1`.
pub fn backoff(settings: &OutboxSettings, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(30));
    settings
        .first_retry
        .saturating_mul(factor)
        .min(settings.max_retry)
}

/// The outbox task.
pub struct OutboxTask {
    pub db: OutboxDb,
    pub net: Network,
    pub store: Arc<dyn EventStore>,
    pub bus: EventBus,
    pub owner: PublicKey,
    pub settings: OutboxSettings,
    pub home: HomeSettings,
    /// Wakes the task when new rows are queued, so they go out at once.
    pub wake: Arc<Notify>,
}

impl OutboxTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut bus = this.bus.subscribe();
        let mut cursor = CursorState::default();
        this.rescan(&mut cursor).await;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        let mut cursor_tick = tokio::time::interval(Duration::from_secs(5));
        let mut sending: JoinSet<String> = JoinSet::new();
        let mut busy: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                item = bus.recv() => match item {
                    Ok(live) if live.event.pubkey == this.owner => {
                        let queued = this.enqueue(&live.event, &live.json).await;
                        cursor.seen(live.event.created_at.as_secs(), queued);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => this.rescan(&mut cursor).await,
                    Err(RecvError::Closed) => break,
                },
                Some(done) = sending.join_next(), if !sending.is_empty() => {
                    if let Ok(target) = done {
                        busy.remove(&target);
                        // Rows that came in while this target was busy go out now.
                        this.clone().start_due(&mut sending, &mut busy).await;
                    }
                }
                _ = tick.tick() => this.clone().start_due(&mut sending, &mut busy).await,
                _ = this.wake.notified() => this.clone().start_due(&mut sending, &mut busy).await,
                // The cursor moves in the background: a crash loses at most a few seconds
                // of it, and the rescan overlaps by more than that.
                _ = cursor_tick.tick(), if cursor.seen_max > 0 || cursor.unqueued.is_some() => {
                    this.tick_cursor(&mut cursor).await;
                }
                _ = prune.tick() => {
                    let before = now().saturating_sub(this.settings.give_up.as_secs() + 86_400);
                    if let Err(e) = this.db.prune(before).await {
                        warn!(error = %e, "cannot prune the outbox");
                    }
                }
            }
        }
        sending.shutdown().await;
    }

    /// Queues `event` for its recipients; false if `outbox.db` refused the rows.
    async fn enqueue(&self, event: &Event, json: &str) -> bool {
        let mut targets = Vec::new();
        if KindClass::of(event.kind) != KindClass::Ephemeral {
            targets.push(home_target(&self.owner));
        }
        for pk in recipients(event) {
            targets.push(pk.to_hex());
            targets.push(home_target(&pk));
        }
        if !targets.is_empty() {
            match self
                .db
                .enqueue(event.id.to_hex(), json.to_owned(), targets, now())
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    debug!(id = %event.id, targets = n, "queued for delivery");
                    self.wake.notify_one();
                }
                Err(e) => {
                    warn!(id = %event.id, error = %e, "cannot queue an event for delivery; trying again shortly");
                    return false;
                }
            }
        }
        true
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
        let filter = Filter::new()
            .author(self.owner)
            .since(Timestamp::from(since));
        let events = match self.store.query(vec![filter]).await {
            Ok(events) => events,
            Err(e) => {
                warn!(error = %e, "cannot rescan the owner's events");
                return false;
            }
        };
        for event in events.iter().rev() {
            if !self.enqueue(event, &event.as_json()).await {
                // The rest would most likely fail the same way (a full disk): next tick.
                return false;
            }
        }
        if let Some(newest) = events.first() {
            db::log_failed_write(
                self.db.set_cursor(newest.created_at.as_secs()).await,
                "move the outbox cursor",
            );
        }
        true
    }

    async fn start_due(self: Arc<Self>, sending: &mut JoinSet<String>, busy: &mut HashSet<String>) {
        if sending.len() >= PARALLEL {
            return;
        }
        let due = match self.db.due(now(), 1024).await {
            Ok(d) => d,
            Err(e) => return warn!(error = %e, "cannot read the outbox"),
        };
        let mut by_target: HashMap<String, Vec<db::Due>> = HashMap::new();
        for row in due {
            if !busy.contains(&row.target) {
                let rows = by_target.entry(row.target.clone()).or_default();
                if rows.len() < BATCH {
                    rows.push(row);
                }
            }
        }
        for (target, rows) in by_target {
            if sending.len() >= PARALLEL {
                break;
            }
            busy.insert(target.clone());
            let this = self.clone();
            sending.spawn(async move {
                this.deliver(&target, rows).await;
                target
            });
        }
    }

    /// One push of `rows` to `target`'s node; each row is then delivered, rescheduled or
    /// given up.
    async fn deliver(&self, target: &str, rows: Vec<db::Due>) {
        if let Some(user) = target.strip_prefix(HOME_PREFIX) {
            return self.deliver_home(user, rows).await;
        }
        let result = self.push(target, &rows).await;
        let results = match result {
            Ok(results) => results,
            Err(reason) => {
                debug!(%target, %reason, events = rows.len(), "delivery failed; will retry");
                return self.reschedule(rows, reason).await;
            }
        };
        let mut done = Vec::new();
        let mut refused = Vec::new();
        let mut again = Vec::new();
        for (row, res) in rows.into_iter().zip(results) {
            match res {
                None => done.push((row.event_id, row.target)),
                Some(r) if r.starts_with("invalid") || r.starts_with("blocked") => {
                    refused.push(((row.event_id, row.target), r))
                }
                Some(r) => again.push((row, r)),
            }
        }
        if !done.is_empty() {
            info!(%target, events = done.len(), "delivered");
            db::log_failed_write(self.db.delivered(done).await, "mark rows delivered");
        }
        for (key, reason) in refused {
            warn!(%target, id = %key.0, %reason, "recipient refused the event; giving up");
            db::log_failed_write(
                self.db.give_up(vec![key], reason).await,
                "mark rows given up",
            );
        }
        for (row, reason) in again {
            self.reschedule(vec![row], reason).await;
        }
    }

    async fn push(&self, target: &str, rows: &[db::Due]) -> Result<Vec<Option<String>>, String> {
        let pk = PublicKey::from_hex(target).map_err(|e| e.to_string())?;
        let home = self
            .net
            .resolve(pk)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no home record found".to_string())?;
        let events = rows.iter().map(|r| r.json.clone()).collect();
        let delivered = self
            .net
            .request(
                home.peer,
                home.addrs,
                Request::new(RequestBody::Push { events }),
            )
            .await
            .map_err(|e| e.to_string())?;
        debug!(%target, path = ?delivered.path, "push answered");
        match delivered.response.body {
            ResponseBody::Ack { results } if results.len() == rows.len() => Ok(results),
            ResponseBody::Refused { reason } => Err(reason),
            _ => Err("the recipient answered out of protocol".into()),
        }
    }

    async fn reschedule(&self, rows: Vec<db::Due>, reason: String) {
        let now = now();
        let mut keys = Vec::new();
        let mut next = Vec::new();
        let mut expired = Vec::new();
        for row in rows {
            let key = (row.event_id, row.target);
            if now.saturating_sub(row.created) >= self.settings.give_up.as_secs() {
                expired.push(key);
            } else {
                keys.push(key);
                next.push(now + backoff(&self.settings, row.attempts).as_secs().max(1));
            }
        }
        if !expired.is_empty() {
            warn!(events = expired.len(), %reason, "undelivered for too long; giving up");
            let reason = format!("gave up after {:?}: {reason}", self.settings.give_up);
            db::log_failed_write(self.db.give_up(expired, reason).await, "mark rows given up");
        }
        if !keys.is_empty() {
            db::log_failed_write(self.db.retry(keys, next, reason).await, "reschedule rows");
        }
    }
}

fn now() -> u64 {
    Timestamp::now().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    #[test]
    fn backoff_doubles_and_caps() {
        let s = OutboxSettings::default();
        assert_eq!(backoff(&s, 0), Duration::from_secs(5));
        assert_eq!(backoff(&s, 3), Duration::from_secs(40));
        assert_eq!(backoff(&s, 40), s.max_retry);
    }

    #[test]
    fn lists_have_no_recipients() {
        let me = Keys::generate();
        let you = Keys::generate().public_key();
        let tags = vec![
            Tag::public_key(you),
            Tag::public_key(you),
            Tag::public_key(me.public_key()),
        ];
        let reply = EventBuilder::new(Kind::TextNote, "hi")
            .tags(tags.clone())
            .finalize(&me)
            .unwrap();
        assert_eq!(recipients(&reply), vec![you]);
        let list = EventBuilder::new(Kind::ContactList, "")
            .tags(tags)
            .finalize(&me)
            .unwrap();
        assert!(recipients(&list).is_empty());
    }
}

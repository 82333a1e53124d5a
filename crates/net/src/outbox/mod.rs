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
mod intake;
mod load;
mod schema;
mod wraps;

pub use home::{home_target, HOME_PREFIX};
pub use wraps::{queue_wrap, wrap_targets};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use starling_core::EventBus;
use starling_proto::{Event, KindClass, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{HomeSettings, OutboxSettings};
use crate::handle::Network;
use crate::home::HomeRecord;
use crate::policy::tagged_pubkeys;
use crate::wire::{Request, RequestBody, ResponseBody};

pub use db::{Depth, OutboxDb, Queued};

/// Recipients per event at most.
const MAX_TARGETS: usize = 50;
/// Events per push at most.
const BATCH: usize = 100;
/// Recipients served at once.
const PARALLEL: usize = 8;

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
        // Subscribed here, before the intake's first rescan, so nothing falls between.
        let bus = this.bus.subscribe();
        let intake = match intake::spawn(this.clone(), bus, shutdown.clone()) {
            Ok(thread) => Some(thread),
            Err(e) => {
                warn!(error = %e, "cannot start the outbox intake thread; running it as a task");
                let (task, bus, stop) = (this.clone(), this.bus.subscribe(), shutdown.clone());
                tokio::spawn(async move { task.intake(bus, stop).await });
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut prune = tokio::time::interval(Duration::from_secs(3600));
        let mut sending: JoinSet<String> = JoinSet::new();
        let mut busy: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = sending.join_next(), if !sending.is_empty() => {
                    if let Ok(target) = done {
                        busy.remove(&target);
                        // Rows that came in while this target was busy go out now.
                        this.clone().start_due(&mut sending, &mut busy).await;
                    }
                }
                _ = tick.tick() => this.clone().start_due(&mut sending, &mut busy).await,
                _ = this.wake.notified() => this.clone().start_due(&mut sending, &mut busy).await,
                _ = prune.tick() => {
                    let before = now().saturating_sub(this.settings.give_up.as_secs() + 86_400);
                    if let Err(e) = this.db.prune(before).await {
                        warn!(error = %e, "cannot prune the outbox");
                    }
                }
            }
        }
        sending.shutdown().await;
        if let Some(thread) = intake {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn start_due(self: Arc<Self>, sending: &mut JoinSet<String>, busy: &mut HashSet<String>) {
        if sending.len() >= PARALLEL {
            return;
        }
        let skip = busy.iter().cloned().collect();
        let due = match self
            .db
            .due(now(), skip, PARALLEL - sending.len(), BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => return warn!(error = %e, "cannot read the outbox"),
        };
        for due in due {
            busy.insert(due.target.clone());
            let this = self.clone();
            sending.spawn(async move {
                let result = this.deliver(&due.target, due.attempts, due.rows).await;
                this.settle(&due.target, due.attempts, result).await;
                due.target
            });
        }
    }

    /// Records how a round to `target` ended: on failure the target waits, with its whole
    /// backlog, for a backoff that grows with its failed rounds in a row.
    async fn settle(&self, target: &str, attempts: u32, result: Result<(), String>) {
        let failed = result.err().map(|reason| {
            let wait = backoff(&self.settings, attempts).as_secs().max(1);
            (now() + wait, reason)
        });
        db::log_failed_write(
            self.db.settle(target.to_owned(), failed).await,
            "schedule the target's next round",
        );
    }

    /// One push of `rows` to `target`'s node (`attempts`: the target's failed rounds in a
    /// row before this one); each row is then delivered, rescheduled or given up. An error
    /// when the round got none of them through.
    async fn deliver(&self, target: &str, attempts: u32, rows: Vec<db::Due>) -> Result<(), String> {
        if let Some(user) = target.strip_prefix(HOME_PREFIX) {
            return self.deliver_home(user, attempts, rows).await;
        }
        // The node is found before the events are read: a target that cannot be reached
        // costs no reads.
        let home = match self.resolve(target).await {
            Ok(home) => home,
            Err(reason) => {
                debug!(%target, %reason, events = rows.len(), "recipient not found; will retry");
                self.round_failed(rows, &reason).await;
                return Err(reason);
            }
        };
        let rows = self.with_json(rows).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let results = match self.push(target, home, &rows).await {
            Ok(results) => results,
            Err(reason) => {
                debug!(%target, %reason, events = rows.len(), "delivery failed; will retry");
                self.round_failed(rows, &reason).await;
                return Err(reason);
            }
        };
        let mut done = Vec::new();
        let mut refused = Vec::new();
        let mut again = Vec::new();
        for (row, res) in rows.into_iter().zip(results) {
            match res {
                None => done.push(row.key()),
                Some(r) if r.starts_with("invalid") || r.starts_with("blocked") => {
                    refused.push((row.key(), r))
                }
                Some(r) => again.push((row, r)),
            }
        }
        let progress = !done.is_empty() || !refused.is_empty();
        if !done.is_empty() {
            info!(%target, events = done.len(), "delivered");
            db::log_failed_write(self.db.delivered(done).await, "mark rows delivered");
        }
        for (key, reason) in refused {
            warn!(%target, id = %key.event_id, %reason, "recipient refused the event; giving up");
            db::log_failed_write(
                self.db.give_up(vec![key], reason).await,
                "mark rows given up",
            );
        }
        let first_reason = again.first().map(|(_, r)| r.clone());
        for (row, reason) in again {
            self.reschedule(vec![row], reason).await;
        }
        match first_reason {
            Some(reason) if !progress => Err(reason),
            _ => Ok(()),
        }
    }

    /// The node of the user `target` names.
    async fn resolve(&self, target: &str) -> Result<HomeRecord, String> {
        let pk = PublicKey::from_hex(target).map_err(|e| e.to_string())?;
        self.net
            .resolve(pk)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no home record found".to_string())
    }

    async fn push(
        &self,
        target: &str,
        home: HomeRecord,
        rows: &[db::Due],
    ) -> Result<Vec<Option<String>>, String> {
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

    /// After a round that got none of `rows` through for a reason of the whole round (the
    /// target not found or not answering, the store not readable): the target waits with
    /// its whole backlog (see `settle`), so the rows are left as they are, except those
    /// undelivered for too long, which are given up. A target that stays down so costs
    /// one write per round, not one per row.
    async fn round_failed(&self, rows: Vec<db::Due>, reason: &str) {
        self.give_up_expired(rows, reason).await;
    }

    /// Reschedules rows that failed where others got through, each after a backoff that
    /// grows with its own attempts, and gives up those undelivered for too long.
    async fn reschedule(&self, rows: Vec<db::Due>, reason: String) {
        let rows = self.give_up_expired(rows, &reason).await;
        if rows.is_empty() {
            return;
        }
        let now = now();
        let next = rows
            .iter()
            .map(|row| now + backoff(&self.settings, row.attempts).as_secs().max(1))
            .collect();
        let keys = rows.iter().map(db::Due::key).collect();
        db::log_failed_write(self.db.retry(keys, next, reason).await, "reschedule rows");
    }

    /// Gives up the rows of `rows` undelivered for longer than the configured time, and
    /// returns the others.
    async fn give_up_expired(&self, rows: Vec<db::Due>, reason: &str) -> Vec<db::Due> {
        let now = now();
        let (expired, live): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|row| now.saturating_sub(row.created) >= self.settings.give_up.as_secs());
        if !expired.is_empty() {
            warn!(events = expired.len(), %reason, "undelivered for too long; giving up");
            let reason = format!("gave up after {:?}: {reason}", self.settings.give_up);
            let keys = expired.iter().map(db::Due::key).collect();
            db::log_failed_write(self.db.give_up(keys, reason).await, "mark rows given up");
        }
        live
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

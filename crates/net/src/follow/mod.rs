//! The follower side of follow mode. The task keeps the owner's follow list (their newest
//! kind 3) and, for each followed author, a live subscription at one member of the
//! author's home set: the primary first, failing over to the next member, then to the
//! author's own node (found through its home record); a member that answers with a
//! redirect adds the nodes it names (see `attempt`). Once subscribed (so nothing new is
//! missed), it catches up: the subscription's answer brings the events since the newest
//! one held, then it reconciles a window of the author's events with the serving node
//! and with one more member (two of three members always include one that acknowledged
//! every event that reached a quorum) and fetches only what it still lacks (see
//! `catchup`). It renews the lease at half its length (catching up again each time, at
//! the same node while it answers), re-subscribes everywhere at once when the node comes
//! back online after losing every connection, and retries with backoff when every
//! candidate failed. Where each author was served is kept across restarts (`hints`), as
//! the serving node keeps its subscriber list. The set of followed authors is published
//! for the write policy.

mod attempt;
pub mod hints;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use starling_core::{EventBus, Ingest};
use starling_proto::{Event, Filter, Kind, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio::sync::{broadcast::error::RecvError, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use self::attempt::{Attempt, Taken};
use self::hints::Hint;
use crate::catchup::CatchUp;
use crate::handle::Network;
use crate::keep_alive::Reason;
use crate::outbox::OutboxDb;
use crate::policy::tagged_pubkeys;
use crate::NetError;

/// Subscription attempts in flight at once.
const PARALLEL: usize = 16;
/// First retry delay after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// When a subscription's catch-up could not reconcile with enough members, it is renewed
/// (and the catch-up tried again) this soon instead of at half the lease.
const INCOMPLETE_RETRY: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    InFlight,
    Subscribed { peer: PeerId, renew_at: Instant },
}

#[derive(Debug)]
struct Author {
    state: State,
    /// The author's node whose connection is kept open for pushes.
    kept: Option<PeerId>,
    /// Where the last subscription was served: asked first on renewal and restart.
    hint: Option<Hint>,
    backoff: Duration,
    next_try: Instant,
}

/// What the follow task needs.
pub struct FollowTask {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub catch_up: CatchUp,
    pub bus: EventBus,
    pub owner: PublicKey,
    pub lease: Duration,
    pub follows: watch::Sender<Arc<HashSet<PublicKey>>>,
    /// How many followed authors have a live subscription (for `status`).
    pub subscribed: watch::Sender<usize>,
    /// Nodes that stopped serving some authors (they left the authors' home sets).
    pub moved: mpsc::Receiver<(PeerId, Vec<PublicKey>)>,
    /// Where the hints are kept.
    pub db: OutboxDb,
}

/// An attempt's author and result.
type Outcome = (PublicKey, Result<Taken, NetError>);

impl FollowTask {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut authors: HashMap<PublicKey, Author> = HashMap::new();
        let mut stored = hints::load(&self.db).await;
        // Listen before reading the stored list, so a list published meanwhile is not
        // missed.
        let mut bus = self.bus.subscribe();
        if let Some(list) = self.newest_follow_list().await {
            self.apply(&list, &mut authors, &mut stored).await;
        }
        let mut online = self.net.reconnects();
        let mut lost = self.net.disconnects();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut attempts: JoinSet<Outcome> = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                item = bus.recv() => match item {
                    Ok(live) if live.event.pubkey == self.owner && live.event.kind == Kind::ContactList => {
                        self.apply(&live.event, &mut authors, &mut stored).await;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if let Some(list) = self.newest_follow_list().await {
                            self.apply(&list, &mut authors, &mut stored).await;
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                    if let Ok((author, result)) = done {
                        let effects = on_outcome(author, result, &mut authors, self.lease);
                        for (peer, on) in effects.keep_alive {
                            self.net.keep_alive(peer, Reason::Following, on).await;
                        }
                        if let Some(hint) = effects.hint {
                            hints::save(&self.db, author, hint.as_ref(), Timestamp::now().as_secs()).await;
                        }
                        let live = authors
                            .values()
                            .filter(|a| matches!(a.state, State::Subscribed { .. }))
                            .count();
                        self.subscribed.send_if_modified(|n| std::mem::replace(n, live) != live);
                    }
                }
                Some((peer, moved)) = self.moved.recv() => {
                    for pk in moved {
                        if let Some(a) = authors.get_mut(&pk) {
                            if matches!(a.state, State::Subscribed { peer: p, .. } if p == peer) {
                                info!(author = %pk, %peer, "the serving node left the home set; subscribing elsewhere");
                                a.state = State::Idle;
                                a.hint = None;
                                a.next_try = Instant::now();
                            }
                        }
                    }
                }
                gone = lost.recv() => {
                    let now = Instant::now();
                    match gone {
                        // The serving node went away: fail over now, not at renewal.
                        Ok(peer) => {
                            for a in authors.values_mut() {
                                if let State::Subscribed { peer: p, renew_at } = &mut a.state {
                                    if *p == peer {
                                        debug!(%peer, "the serving node disconnected: subscribing again");
                                        *renew_at = now;
                                    }
                                }
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for a in authors.values_mut() {
                                if let State::Subscribed { renew_at, .. } = &mut a.state {
                                    *renew_at = now;
                                }
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
                changed = online.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    debug!("online again: re-subscribing and catching up");
                    let now = Instant::now();
                    for a in authors.values_mut() {
                        match &mut a.state {
                            State::Idle => {
                                a.next_try = now;
                                a.backoff = FIRST_BACKOFF;
                            }
                            State::Subscribed { renew_at, .. } => *renew_at = now,
                            State::InFlight => {}
                        }
                    }
                }
                _ = tick.tick() => self.start_due(&mut authors, &mut attempts),
            }
        }
        attempts.shutdown().await;
    }

    async fn newest_follow_list(&self) -> Option<Event> {
        let filter = Filter::new()
            .author(self.owner)
            .kind(Kind::ContactList)
            .limit(1);
        self.store
            .query(vec![filter])
            .await
            .ok()?
            .into_iter()
            .next()
    }

    /// Applies a new follow list: new authors start from their stored hints (taken out
    /// of `stored`); unfollowed ones release their kept connection and their hint.
    async fn apply(
        &self,
        list: &Event,
        authors: &mut HashMap<PublicKey, Author>,
        stored: &mut HashMap<PublicKey, Hint>,
    ) {
        let wanted: HashSet<PublicKey> = tagged_pubkeys(list)
            .filter(|pk| *pk != self.owner)
            .collect();
        let mut dropped = Vec::new();
        authors.retain(|pk, a| {
            let keep = wanted.contains(pk);
            if !keep {
                dropped.push((*pk, a.kept));
            }
            keep
        });
        let now = Instant::now();
        for pk in &wanted {
            authors.entry(*pk).or_insert_with(|| Author {
                state: State::Idle,
                kept: None,
                hint: stored.remove(pk),
                backoff: FIRST_BACKOFF,
                next_try: now,
            });
        }
        info!(follows = wanted.len(), "follow list loaded");
        self.follows.send_replace(Arc::new(wanted));
        for (author, kept) in dropped {
            if let Some(peer) = kept {
                self.net.keep_alive(peer, Reason::Following, false).await;
            }
            hints::save(&self.db, author, None, 0).await;
        }
    }

    fn start_due(&self, authors: &mut HashMap<PublicKey, Author>, attempts: &mut JoinSet<Outcome>) {
        let now = Instant::now();
        for (pk, a) in authors.iter_mut() {
            if attempts.len() >= PARALLEL {
                return;
            }
            let due = match a.state {
                State::Idle => a.next_try <= now,
                State::Subscribed { renew_at, .. } => renew_at <= now,
                State::InFlight => false,
            };
            if !due {
                continue;
            }
            a.state = State::InFlight;
            let attempt = Attempt {
                net: self.net.clone(),
                ingest: self.ingest.clone(),
                catch_up: self.catch_up.clone(),
                author: *pk,
                lease: self.lease,
            };
            let hint = a.hint.clone();
            let author = *pk;
            attempts.spawn(async move { (author, attempt.run(hint).await) });
        }
    }
}

/// What an attempt's result implies beyond the author's state.
#[derive(Default)]
struct Effects {
    /// Connections to keep open (true) or release.
    keep_alive: Vec<(PeerId, bool)>,
    /// The author's hint to store (`Some(None)`: forget it), when it changed.
    hint: Option<Option<Hint>>,
}

/// Records an attempt's result.
fn on_outcome(
    pk: PublicKey,
    result: Result<Taken, NetError>,
    authors: &mut HashMap<PublicKey, Author>,
    lease: Duration,
) -> Effects {
    let Some(a) = authors.get_mut(&pk) else {
        return Effects::default(); // unfollowed meanwhile
    };
    let mut effects = Effects::default();
    let changes = &mut effects.keep_alive;
    let now = Instant::now();
    match result {
        Ok(Taken {
            hint,
            caught_up,
            complete,
        }) => {
            let peer = hint.serving.peer;
            let own_node = hint.own;
            if !matches!(a.state, State::Subscribed { peer: p, .. } if p == peer) || caught_up > 0 {
                if own_node {
                    info!(author = %pk, %peer, caught_up, "subscribed at the author's node");
                } else {
                    info!(author = %pk, %peer, caught_up, "subscribed at a home-set member");
                }
            }
            // An incomplete catch-up (a member did not answer) is tried again soon.
            let renew_in = if complete {
                lease / 2
            } else {
                INCOMPLETE_RETRY.min(lease / 2)
            };
            a.state = State::Subscribed {
                peer,
                renew_at: now + renew_in,
            };
            if a.hint.as_ref() != Some(&hint) {
                effects.hint = Some(Some(hint.clone()));
            }
            a.hint = Some(hint);
            a.backoff = FIRST_BACKOFF;
            if a.kept != Some(peer) {
                changes.extend(a.kept.map(|old| (old, false)));
                changes.push((peer, true));
                a.kept = Some(peer);
            }
        }
        Err(e) => {
            debug!(author = %pk, error = %e, retry_in = ?a.backoff, "subscription failed");
            a.state = State::Idle;
            if a.hint.take().is_some() {
                effects.hint = Some(None);
            }
            a.next_try = now + a.backoff;
            a.backoff = (a.backoff * 2).min(MAX_BACKOFF);
            changes.extend(a.kept.take().map(|old| (old, false)));
        }
    }
    effects
}

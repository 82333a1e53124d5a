//! The follower side of follow mode. The task keeps the owner's follow list (their newest
//! kind 3) and, for each followed author, a live subscription at the author's node: it
//! finds the node through the author's home record, subscribes with a since-time (so the
//! subscription's answer is the catch-up after any downtime), renews the lease at half
//! its length (catching up again each time), and retries with backoff when an attempt
//! fails. Connections are not held open: the author's node dials this one to push, so a
//! closed idle connection costs nothing, and the author's node keeps its subscriber list
//! across restarts. The set of followed authors is published for the write policy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use starling_core::{EventBus, Ingest};
use starling_proto::{Event, Filter, Kind, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio::sync::{broadcast::error::RecvError, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::handle::Network;
use crate::home::HomeRecord;
use crate::keep_alive::Reason;
use crate::policy::{ingest_by_author, tagged_pubkeys};
use crate::wire::{Request, RequestBody, ResponseBody};
use crate::NetError;

/// Subscription attempts in flight at once.
const PARALLEL: usize = 16;
/// First retry delay after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Catch-up pages fetched after a subscription at most.
const MAX_PAGES: usize = 20;
const PAGE: usize = 500;
/// Overlap of the since-time with what the node already holds (clock skew, late events).
const OVERLAP_SECS: u64 = 120;

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
    home: Option<HomeRecord>,
    backoff: Duration,
    next_try: Instant,
}

/// What the follow task needs.
pub struct FollowTask {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub bus: EventBus,
    pub owner: PublicKey,
    pub lease: Duration,
    pub follows: watch::Sender<Arc<HashSet<PublicKey>>>,
}

type Outcome = (
    PublicKey,
    Result<(PeerId, HomeRecord, usize), (Option<HomeRecord>, NetError)>,
);

impl FollowTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut authors: HashMap<PublicKey, Author> = HashMap::new();
        if let Some(list) = self.newest_follow_list().await {
            self.apply_follow_list(&list, &mut authors);
        }
        let mut bus = self.bus.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut attempts: JoinSet<Outcome> = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                item = bus.recv() => match item {
                    Ok(live) if live.event.pubkey == self.owner && live.event.kind == Kind::ContactList => {
                        for peer in self.apply_follow_list(&live.event, &mut authors) {
                            self.net.keep_alive(peer, Reason::Following, false).await;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if let Some(list) = self.newest_follow_list().await {
                            for peer in self.apply_follow_list(&list, &mut authors) {
                                self.net.keep_alive(peer, Reason::Following, false).await;
                            }
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                    if let Ok(outcome) = done {
                        for (peer, on) in on_outcome(outcome, &mut authors, self.lease) {
                            self.net.keep_alive(peer, Reason::Following, on).await;
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

    /// Applies a new follow list; returns the peers no longer needed.
    fn apply_follow_list(
        &self,
        list: &Event,
        authors: &mut HashMap<PublicKey, Author>,
    ) -> Vec<PeerId> {
        let wanted: HashSet<PublicKey> = tagged_pubkeys(list)
            .filter(|pk| *pk != self.owner)
            .collect();
        let mut dropped = Vec::new();
        authors.retain(|pk, a| {
            let keep = wanted.contains(pk);
            if !keep {
                dropped.extend(a.kept);
            }
            keep
        });
        let now = Instant::now();
        for pk in &wanted {
            authors.entry(*pk).or_insert_with(|| Author {
                state: State::Idle,
                kept: None,
                home: None,
                backoff: FIRST_BACKOFF,
                next_try: now,
            });
        }
        info!(follows = wanted.len(), "follow list loaded");
        self.follows.send_replace(Arc::new(wanted));
        dropped
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
                store: self.store.clone(),
                author: *pk,
                lease: self.lease,
            };
            let home = a.home.clone();
            let author = *pk;
            attempts.spawn(async move { (author, attempt.run(home).await) });
        }
    }
}

/// Records an attempt's result; returns the keep-alive changes it implies.
fn on_outcome(
    outcome: Outcome,
    authors: &mut HashMap<PublicKey, Author>,
    lease: Duration,
) -> Vec<(PeerId, bool)> {
    let (pk, result) = outcome;
    let Some(a) = authors.get_mut(&pk) else {
        return Vec::new(); // unfollowed meanwhile
    };
    let mut changes = Vec::new();
    let now = Instant::now();
    match result {
        Ok((peer, home, caught_up)) => {
            if !matches!(a.state, State::Subscribed { .. }) || caught_up > 0 {
                info!(author = %pk, %peer, caught_up, "subscribed at the author's node");
            }
            a.state = State::Subscribed {
                peer,
                renew_at: now + lease / 2,
            };
            a.home = Some(home);
            a.backoff = FIRST_BACKOFF;
            if a.kept != Some(peer) {
                changes.extend(a.kept.map(|old| (old, false)));
                changes.push((peer, true));
                a.kept = Some(peer);
            }
        }
        Err((_, e)) => {
            debug!(author = %pk, error = %e, retry_in = ?a.backoff, "subscription failed");
            a.state = State::Idle;
            // The cached record may be stale (the author's node moved): look it up
            // again next time.
            a.home = None;
            a.next_try = now + a.backoff;
            a.backoff = (a.backoff * 2).min(MAX_BACKOFF);
            changes.extend(a.kept.take().map(|old| (old, false)));
        }
    }
    changes
}

/// One subscription attempt for one author.
struct Attempt {
    net: Network,
    ingest: Arc<Ingest>,
    store: Arc<dyn EventStore>,
    author: PublicKey,
    lease: Duration,
}

impl Attempt {
    async fn run(
        self,
        home: Option<HomeRecord>,
    ) -> Result<(PeerId, HomeRecord, usize), (Option<HomeRecord>, NetError)> {
        let home = match home {
            Some(h) => h,
            None => match self.net.resolve(self.author).await {
                Ok(Some(h)) => h,
                Ok(None) => return Err((None, NetError::NoHome(self.author.to_hex()))),
                Err(e) => return Err((None, e)),
            },
        };
        match self.subscribe(&home).await {
            Ok(n) => Ok((home.peer, home, n)),
            Err(e) => Err((Some(home), e)),
        }
    }

    async fn subscribe(&self, home: &HomeRecord) -> Result<usize, NetError> {
        let since = self.newest_held().await.saturating_sub(OVERLAP_SECS);
        let addrs = self
            .net
            .advertised()
            .borrow()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let request = Request::new(RequestBody::Subscribe {
            authors: vec![self.author.to_hex()],
            since,
            lease_secs: self.lease.as_secs() as u32,
            addrs,
        });
        let delivered = self
            .net
            .request(home.peer, home.addrs.clone(), request)
            .await?;
        let (events, mut more) = match delivered.response.body {
            ResponseBody::Subscribed { events, more } => (events, more),
            ResponseBody::Refused { reason } => return Err(NetError::Refused(reason)),
            _ => return Err(NetError::Protocol),
        };
        let mut stored = ingest_by_author(&self.ingest, &events, self.author).await;
        let mut oldest = oldest_created_at(&events);
        let mut pages = 0;
        while more && pages < MAX_PAGES {
            pages += 1;
            let Some(until) = oldest else { break };
            let filter = Filter::new()
                .author(self.author)
                .since(Timestamp::from(since))
                .until(until)
                .limit(PAGE);
            let request = Request::new(RequestBody::Fetch {
                filters: vec![filter.as_json()],
                limit: PAGE as u32,
            });
            let page = self
                .net
                .request(home.peer, home.addrs.clone(), request)
                .await?;
            let ResponseBody::Events { events, more: m } = page.response.body else {
                break;
            };
            stored += ingest_by_author(&self.ingest, &events, self.author).await;
            let next = oldest_created_at(&events);
            if next.is_none() || next == oldest {
                break;
            }
            oldest = next;
            more = m;
        }
        Ok(stored)
    }

    async fn newest_held(&self) -> u64 {
        let filter = Filter::new().author(self.author).limit(1);
        match self.store.query(vec![filter]).await {
            Ok(events) => events.first().map_or(0, |e| e.created_at.as_secs()),
            Err(_) => 0,
        }
    }
}

fn oldest_created_at(events: &[String]) -> Option<Timestamp> {
    events
        .iter()
        .filter_map(|j| serde_json::from_str::<CreatedAt>(j).ok())
        .map(|c| c.created_at)
        .min()
        .map(Timestamp::from)
}

#[derive(serde::Deserialize)]
struct CreatedAt {
    created_at: u64,
}

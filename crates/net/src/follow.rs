//! The follower side of follow mode. The task keeps the owner's follow list (their newest
//! kind 3) and, for each followed author, a live subscription at one member of the
//! author's home set: the primary first, failing over to the next member, then to the
//! author's own node (found through its home record); a member that answers with a
//! redirect adds the nodes it names. Once subscribed (so nothing new is missed), it
//! catches up: it reconciles a window of the author's events with the serving node and
//! with one more member (two of three members always include one that acknowledged
//! every event that reached a quorum) and fetches only what it lacks (see `catchup`).
//! It renews the lease at half its length (catching up again each time, at the same
//! node while it answers), re-subscribes everywhere at once when the node comes back
//! online after losing every connection, and retries with backoff when every candidate
//! failed. The serving node keeps its subscriber list across restarts. The set of
//! followed authors is published for the write policy.

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

use crate::catchup::CatchUp;
use crate::handle::Network;
use crate::homeset::Member;
use crate::keep_alive::Reason;
use crate::policy::{ingest_by_author, tagged_pubkeys};
use crate::wire::{Request, RequestBody, ResponseBody, WireMember};
use crate::NetError;

/// Subscription attempts in flight at once.
const PARALLEL: usize = 16;
/// First retry delay after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The subscription's own answer covers only this last moment; older events come by
/// reconciliation.
const LIVE_OVERLAP_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    InFlight,
    Subscribed { peer: PeerId, renew_at: Instant },
}

/// Candidates tried in one attempt at most (redirects add some).
const MAX_CANDIDATES: usize = 8;

#[derive(Debug)]
struct Author {
    state: State,
    /// The author's node whose connection is kept open for pushes.
    kept: Option<PeerId>,
    /// The node that served the last subscription (and whether it is the author's own):
    /// asked first on renewal.
    last: Option<(Member, bool)>,
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
}

/// A successful attempt: the serving node, events caught up, and whether the node is the
/// author's own (no home-set member took the subscription).
type Outcome = (PublicKey, Result<(Member, usize, bool), NetError>);

impl FollowTask {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut authors: HashMap<PublicKey, Author> = HashMap::new();
        // Listen before reading the stored list, so a list published meanwhile is not
        // missed.
        let mut bus = self.bus.subscribe();
        if let Some(list) = self.newest_follow_list().await {
            self.apply_follow_list(&list, &mut authors);
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
                                a.last = None;
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
                last: None,
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
                catch_up: self.catch_up.clone(),
                author: *pk,
                lease: self.lease,
            };
            let last = a.last.clone();
            let author = *pk;
            attempts.spawn(async move { (author, attempt.run(last).await) });
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
        Ok((member, caught_up, own_node)) => {
            let peer = member.peer;
            if !matches!(a.state, State::Subscribed { peer: p, .. } if p == peer) || caught_up > 0 {
                if own_node {
                    info!(author = %pk, %peer, caught_up, "subscribed at the author's node");
                } else {
                    info!(author = %pk, %peer, caught_up, "subscribed at a home-set member");
                }
            }
            a.state = State::Subscribed {
                peer,
                renew_at: now + lease / 2,
            };
            a.last = Some((member, own_node));
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
            a.last = None;
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
    catch_up: CatchUp,
    author: PublicKey,
    lease: Duration,
}

impl Attempt {
    /// Tries the candidates in order until one takes the subscription.
    async fn run(self, last: Option<(Member, bool)>) -> Result<(Member, usize, bool), NetError> {
        let me = self.net.peer_id();
        let mut own_node = last.as_ref().and_then(|(m, own)| own.then_some(m.peer));
        let mut queue: Vec<Member> = last.into_iter().map(|(m, _)| m).collect();
        let fresh = queue.is_empty();
        let mut members = Vec::new();
        match self.net.home_set(self.author, fresh).await {
            Ok(set) => {
                members = set.members.clone();
                queue.extend(set.members);
            }
            Err(e) => debug!(author = %self.author, error = %e, "no home set yet"),
        }
        let mut tried: HashSet<PeerId> = HashSet::from([me]);
        let mut resolved = false;
        let mut last_error = NetError::NoHomeSet(self.author.to_hex());
        loop {
            let next = queue.iter().position(|m| !tried.contains(&m.peer));
            let member = match next {
                Some(i) => queue.remove(i),
                None if !resolved => {
                    // Every member failed: the author's own node, from its home record.
                    resolved = true;
                    match self.net.resolve(self.author).await {
                        Ok(Some(h)) => {
                            own_node = Some(h.peer);
                            queue.push(Member {
                                peer: h.peer,
                                addrs: h.addrs,
                            });
                            continue;
                        }
                        Ok(None) => return Err(last_error),
                        Err(e) => return Err(e),
                    }
                }
                None => return Err(last_error),
            };
            if tried.len() > MAX_CANDIDATES {
                return Err(last_error);
            }
            tried.insert(member.peer);
            match self.subscribe(&member).await {
                Ok(Ok(n)) => {
                    let own = own_node == Some(member.peer);
                    let caught_up = n + self.reconcile(&member, &members).await;
                    return Ok((member, caught_up, own));
                }
                Ok(Err(redirect)) => {
                    debug!(author = %self.author, peer = %member.peer, "redirected");
                    queue.extend(redirect.into_iter().filter(|m| !tried.contains(&m.peer)));
                }
                Err(e) => {
                    debug!(author = %self.author, peer = %member.peer, error = %e, "candidate failed");
                    self.net.forget_member(member.peer).await;
                    last_error = e;
                }
            }
        }
    }

    /// Subscribes at `target`, ingesting the few events its answer carries; `Ok(Err(members))` is
    /// a redirect to the nodes `target` names.
    async fn subscribe(&self, target: &Member) -> Result<Result<usize, Vec<Member>>, NetError> {
        let since = Timestamp::now().as_secs().saturating_sub(LIVE_OVERLAP_SECS);
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
            .request(target.peer, target.addrs.clone(), request)
            .await?;
        match delivered.response.body {
            ResponseBody::Subscribed { events, .. } => {
                Ok(Ok(
                    ingest_by_author(&self.ingest, &events, self.author).await
                ))
            }
            ResponseBody::Redirect { members } => Ok(Err(members
                .iter()
                .filter_map(WireMember::to_member)
                .take(MAX_CANDIDATES)
                .collect())),
            ResponseBody::Refused { reason } => Err(NetError::Refused(reason)),
            _ => Err(NetError::Protocol),
        }
    }

    /// Catches up with the serving node and one more member of the home set; returns
    /// how many events were newly stored. Failures only cost completeness until the next
    /// renewal, so they are logged, not returned.
    async fn reconcile(&self, target: &Member, members: &[Member]) -> usize {
        let me = self.net.peer_id();
        let filter = self
            .catch_up
            .window(Filter::new().author(self.author))
            .await;
        let second = members
            .iter()
            .find(|m| m.peer != target.peer && m.peer != me);
        let mut stored = 0;
        for member in std::iter::once(target).chain(second) {
            let author = self.author;
            let check = |e: &Event| {
                if e.pubkey == author {
                    Ok(())
                } else {
                    Err("not by the reconciled author".to_string())
                }
            };
            match self.catch_up.with_member(member, &filter, check).await {
                Ok(n) => stored += n,
                Err(e) => {
                    debug!(author = %self.author, peer = %member.peer, error = %e, "catch-up failed")
                }
            }
        }
        stored
    }
}

//! The author side of follow mode: the peers subscribed to the authors this node serves
//! (its owner; home-set members later), and the pusher task that sends each new event of
//! those authors to every subscriber, batched per peer.
//!
//! Subscriptions are leases: a follower renews its lease (catching up with a since-fetch
//! each time), and subscribes again when its node starts. The table is kept in memory and
//! written through to `outbox.db`, so a restart of this node does not cut followers off.
//! A push that fails (the follower is offline) is not retried: the follower catches up when
//! it renews or restarts; the subscription ends when its lease does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use starling_core::EventBus;
use starling_proto::PublicKey;
use tokio::sync::{broadcast::error::RecvError, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::handle::Network;
use crate::keep_alive::Reason;
use crate::outbox::OutboxDb;
use crate::wire::{Request, RequestBody};

/// Events per push.
const BATCH: usize = 100;
/// How long the first event of a batch waits for company.
const LINGER: Duration = Duration::from_millis(20);
/// Wait before the one retry of a failed push.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Pushes in flight at once.
const IN_FLIGHT: usize = 64;
/// Most subscribers kept.
const MAX_SUBSCRIBERS: usize = 10_000;

#[derive(Debug)]
struct Sub {
    authors: HashSet<PublicKey>,
    addrs: Vec<Multiaddr>,
    expires: Instant,
}

/// Who is subscribed to what. A plain mutex: the map is small, every access is a quick
/// lookup or insert, and no lock is held across an `.await`.
#[derive(Debug, Default)]
pub struct Subscribers {
    inner: Mutex<HashMap<PeerId, Sub>>,
}

impl Subscribers {
    /// Adds or renews `peer`'s lease on `authors`. Refused when the table is full.
    pub fn add(
        &self,
        peer: PeerId,
        authors: impl IntoIterator<Item = PublicKey>,
        addrs: Vec<Multiaddr>,
        lease: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut map = self.inner.lock().expect("subscriber table poisoned");
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SUBSCRIBERS && !map.contains_key(&peer) {
            return false;
        }
        let sub = map.entry(peer).or_insert_with(|| Sub {
            authors: HashSet::new(),
            addrs: Vec::new(),
            expires: now,
        });
        sub.authors.extend(authors);
        if !addrs.is_empty() {
            sub.addrs = addrs;
        }
        sub.expires = now + lease;
        true
    }

    /// Ends `peer`'s subscription to `authors` (all of them if empty).
    pub fn remove(&self, peer: &PeerId, authors: &[PublicKey]) {
        let mut map = self.inner.lock().expect("subscriber table poisoned");
        if let Some(sub) = map.get_mut(peer) {
            if authors.is_empty() {
                sub.authors.clear();
            } else {
                for a in authors {
                    sub.authors.remove(a);
                }
            }
            if sub.authors.is_empty() {
                map.remove(peer);
            }
        }
    }

    /// `peer`'s subscription: its authors, addresses and remaining lease.
    pub fn get(&self, peer: &PeerId) -> Option<(Vec<PublicKey>, Vec<Multiaddr>, Duration)> {
        let now = Instant::now();
        let map = self.inner.lock().expect("subscriber table poisoned");
        map.get(peer).filter(|s| s.expires > now).map(|s| {
            (
                s.authors.iter().copied().collect(),
                s.addrs.clone(),
                s.expires - now,
            )
        })
    }

    /// Live subscribers of `author`, with their addresses.
    pub fn of(&self, author: &PublicKey) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let now = Instant::now();
        let map = self.inner.lock().expect("subscriber table poisoned");
        map.iter()
            .filter(|(_, s)| s.expires > now && s.authors.contains(author))
            .map(|(p, s)| (*p, s.addrs.clone()))
            .collect()
    }

    /// Forgets expired subscriptions; returns their peers.
    pub fn expire(&self) -> Vec<PeerId> {
        let now = Instant::now();
        let mut map = self.inner.lock().expect("subscriber table poisoned");
        let gone: Vec<PeerId> = map
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            map.remove(p);
        }
        gone
    }

    /// How many peers hold a live subscription.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        let map = self.inner.lock().expect("subscriber table poisoned");
        map.values().filter(|s| s.expires > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Pushes every new event of a served author to its subscribers until shutdown.
pub async fn run_pusher(
    subs: Arc<Subscribers>,
    db: OutboxDb,
    net: Network,
    bus: EventBus,
    served: Arc<dyn Fn(&PublicKey) -> bool + Send + Sync>,
    shutdown: CancellationToken,
) {
    let mut rx = bus.subscribe();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut batches: HashMap<PeerId, (Vec<Multiaddr>, Vec<String>)> = HashMap::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    loop {
        let flush_at =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                flush(&mut batches, &net, &permits, &mut tasks);
                deadline = None;
            }
            item = rx.recv() => match item {
                Ok(live) => {
                    if !served(&live.event.pubkey) {
                        continue;
                    }
                    for (peer, addrs) in subs.of(&live.event.pubkey) {
                        let entry = batches.entry(peer).or_insert_with(|| (addrs, Vec::new()));
                        entry.1.push(live.json.clone());
                    }
                    if batches.values().any(|(_, b)| b.len() >= BATCH) {
                        flush(&mut batches, &net, &permits, &mut tasks);
                        deadline = None;
                    } else if !batches.is_empty() && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + LINGER);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    warn!(missed = n, "pusher fell behind; followers catch up when they renew");
                }
                Err(RecvError::Closed) => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sweep.tick() => {
                for peer in subs.expire() {
                    crate::outbox::db::log_failed_write(db.remove_subscriber(peer.to_string()).await, "remove a subscription");
                    net.keep_alive(peer, Reason::Follower, false).await;
                }
            }
        }
    }
    tasks.shutdown().await;
}

fn flush(
    batches: &mut HashMap<PeerId, (Vec<Multiaddr>, Vec<String>)>,
    net: &Network,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
) {
    for (peer, (addrs, events)) in batches.drain() {
        let net = net.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let n = events.len();
            let request = Request::new(RequestBody::Push { events });
            // One retry: a connection closing under the request is common (idle close,
            // a peer's restart) and a fresh dial usually works.
            let mut result = net.request(peer, addrs.clone(), request.clone()).await;
            if result.is_err() {
                tokio::time::sleep(RETRY_AFTER).await;
                result = net.request(peer, addrs, request).await;
            }
            match result {
                Ok(d) => debug!(%peer, events = n, path = ?d.path, "pushed to follower"),
                // The subscription stays until its lease ends: the follower may be
                // briefly unreachable, and it catches up with what it missed when it
                // renews (or restarts) anyway.
                Err(e) => info!(%peer, error = %e, events = n, "push to follower failed; it catches up when it renews"),
            }
        });
    }
}

/// Loads the subscriptions saved before a restart.
pub async fn restore(subs: &Subscribers, db: &OutboxDb, net: &Network) {
    let now = starling_proto::Timestamp::now().as_secs();
    let rows = match db.load_subscribers(now).await {
        Ok(rows) => rows,
        Err(e) => return warn!(error = %e, "cannot load saved subscriptions"),
    };
    let n = rows.len();
    for (peer, authors, addrs, expires) in rows {
        let Ok(peer) = peer.parse::<PeerId>() else {
            continue;
        };
        let authors = authors.iter().filter_map(|a| PublicKey::from_hex(a).ok());
        let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        subs.add(
            peer,
            authors,
            addrs,
            Duration::from_secs(expires.saturating_sub(now)),
        );
        net.keep_alive(peer, Reason::Follower, true).await;
    }
    if n > 0 {
        info!(subscribers = n, "restored followers' subscriptions");
    }
}

/// Writes `peer`'s current subscription through to the database (or removes it).
pub async fn persist(subs: &Subscribers, db: &OutboxDb, peer: PeerId) {
    let result = match subs.get(&peer) {
        Some((authors, addrs, left)) => {
            let expires = starling_proto::Timestamp::now().as_secs() + left.as_secs();
            db.save_subscriber(
                peer.to_string(),
                authors.iter().map(|a| a.to_hex()).collect(),
                addrs.iter().map(|a| a.to_string()).collect(),
                expires,
            )
            .await
        }
        None => db.remove_subscriber(peer.to_string()).await,
    };
    if let Err(e) = result {
        warn!(%peer, error = %e, "cannot save a subscription");
    }
}

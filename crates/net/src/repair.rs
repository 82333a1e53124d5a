//! Home-set upkeep at a member. After the routing table changed (debounced) and
//! periodically, the node looks up the home set of every author it holds, afresh, and
//! reconciles (negentropy) the author's events and the author's inbox with every other
//! member, each up to the quota:
//! - still a member: it pushes what a member lacks (a newcomer that is now closer gets
//!   everything; a member that missed a push gets that event) and fetches what it lacks
//!   itself, so the members converge on the union of what reached any of them;
//! - no longer a member: it pushes what the members lack, tells the followers subscribed
//!   here for that author to subscribe elsewhere (`Moved`), and stops holding the author.
//!
//! Besides, an author whose events (or inbox) just got new events by push is synced with
//! the members of its cached home set a few seconds after the pushes stop, so members
//! that missed a push (down, or outside the pusher's view of the set) catch up at once.
//!
//! When the sets agree a reconciliation costs one small round trip per filter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_core::Ingest;
use starling_proto::{Event, Filter, PublicKey};
use starling_store::EventStore;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::HomeSettings;
use crate::handle::Network;
use crate::held::Holdings;
use crate::homeset::Member;
use crate::outbox::OutboxDb;
use crate::policy::tags_owner;
use crate::reconcile;
use crate::subscribers::{self, Subscribers};
use crate::wire::{Request, RequestBody};

/// Quiet time after a routing change before a round.
const DEBOUNCE: Duration = Duration::from_secs(3);
/// Quiet time after the last push of a touched author before it is synced.
const TOUCH_QUIET: Duration = Duration::from_secs(3);
/// Touched authors remembered at most (more wait for the periodic round).
const MAX_TOUCHED: usize = 10_000;

/// The repair task.
pub struct RepairTask {
    pub net: Network,
    pub store: Arc<dyn EventStore>,
    pub ingest: Arc<Ingest>,
    pub holdings: Arc<Holdings>,
    pub subscribers: Arc<Subscribers>,
    pub db: OutboxDb,
    pub settings: HomeSettings,
    pub touched: mpsc::Receiver<PublicKey>,
}

impl RepairTask {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut routing = self.net.routing_changes();
        let mut touched: HashMap<PublicKey, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(author) = self.touched.recv() => {
                    if touched.len() < MAX_TOUCHED {
                        touched.insert(author, Instant::now());
                    }
                    continue;
                }
                _ = tick.tick() => {
                    let due: Vec<PublicKey> = touched
                        .iter()
                        .filter(|(_, at)| at.elapsed() >= TOUCH_QUIET)
                        .map(|(pk, _)| *pk)
                        .collect();
                    for author in due {
                        touched.remove(&author);
                        self.sync_touched(author).await;
                    }
                    continue;
                }
                _ = tokio::time::sleep(self.settings.repair_every) => {}
                changed = routing.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(DEBOUNCE) => {}
                    }
                    routing.borrow_and_update();
                }
            }
            self.round().await;
        }
    }

    /// Syncs a touched author with the other members of its (cached) home set.
    async fn sync_touched(&self, author: PublicKey) {
        let me = self.net.peer_id();
        let Ok(set) = self.net.home_set(author, false).await else {
            return;
        };
        for m in set.members.iter().filter(|m| m.peer != me) {
            self.sync(author, m, true).await;
        }
    }

    async fn round(&self) {
        let me = self.net.peer_id();
        for author in self.holdings.authors() {
            let set = match self.net.home_set(author, true).await {
                Ok(set) => set,
                Err(e) => {
                    debug!(%author, error = %e, "repair: no home set");
                    continue;
                }
            };
            let member = set.contains(&me);
            if !member {
                info!(%author, "left this author's home set: handing its events over");
            }
            for m in set.members.iter().filter(|m| m.peer != me) {
                self.sync(author, m, member).await;
            }
            if !member {
                self.tell_followers(author).await;
                self.holdings.release(&author).await;
            }
        }
    }

    /// Reconciles `author`'s events and inbox with `member`: pushes what it lacks and,
    /// when this node stays a member (`pull`), fetches what this node lacks.
    async fn sync(&self, author: PublicKey, member: &Member, pull: bool) {
        let quota = self.settings.quota_events as usize;
        let filters = [
            Filter::new().author(author).limit(quota),
            Filter::new().pubkey(author).limit(quota),
        ];
        for filter in filters {
            let diff = match reconcile::reconcile(&self.net, member, self.store.as_ref(), &filter)
                .await
            {
                Ok(diff) => diff,
                Err(e) => {
                    return debug!(%author, peer = %member.peer, error = %e, "repair: member did not reconcile")
                }
            };
            if !diff.have.is_empty() {
                match reconcile::push(&self.net, member, self.store.as_ref(), &diff.have).await {
                    Ok(taken) => {
                        debug!(%author, peer = %member.peer, lacked = diff.have.len(), taken, "repair: handed events over")
                    }
                    Err(e) => {
                        debug!(%author, peer = %member.peer, error = %e, "repair: hand-off failed")
                    }
                }
            }
            if pull && !diff.need.is_empty() {
                let check = |e: &Event| {
                    if e.pubkey == author || tags_owner(e, &author) {
                        Ok(())
                    } else {
                        Err("neither by nor for the repaired author".to_string())
                    }
                };
                match reconcile::pull(&self.net, member, &self.ingest, &diff.need, check, |_| {})
                    .await
                {
                    Ok(stored) => {
                        debug!(%author, peer = %member.peer, missing = diff.need.len(), stored, "repair: fetched what this member lacked")
                    }
                    Err(e) => {
                        debug!(%author, peer = %member.peer, error = %e, "repair: fetch failed")
                    }
                }
            }
        }
    }

    /// Tells the followers subscribed here for `author` to go elsewhere.
    async fn tell_followers(&self, author: PublicKey) {
        for (peer, addrs) in self.subscribers.of(&author) {
            self.subscribers.remove(&peer, &[author]);
            subscribers::persist(&self.subscribers, &self.db, peer).await;
            let request = Request::new(RequestBody::Moved {
                authors: vec![author.to_hex()],
            });
            if let Err(e) = self.net.request(peer, addrs, request).await {
                debug!(%peer, error = %e, "cannot tell a follower the author moved; it finds out when it renews");
            }
        }
    }
}

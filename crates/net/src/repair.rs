//! Home-set upkeep at a member. After the routing table changed (debounced) and
//! periodically, the node looks up the home set of every author it holds, afresh:
//! - still a member: it hands the author's events (and the author's inbox) to members
//!   that joined the set since the last round, so a newcomer that is now closer has them;
//! - no longer a member: it hands them to the current members, tells the followers
//!   subscribed here for that author to subscribe elsewhere (`Moved`), and stops holding
//!   the author.
//!
//! The hand-off pushes the most recent events (up to [`HANDOFF`] of the author's and as
//! many of its inbox); members already holding them acknowledge them as duplicates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use starling_proto::{Filter, PublicKey};
use starling_store::EventStore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::HomeSettings;
use crate::handle::Network;
use crate::held::Holdings;
use crate::homeset::Member;
use crate::outbox::OutboxDb;
use crate::subscribers::{self, Subscribers};
use crate::wire::{Request, RequestBody, ResponseBody};

/// Events of one author (and of its inbox) handed over at most.
const HANDOFF: usize = 2_000;
/// Events per push.
const BATCH: usize = 200;
/// Quiet time after a routing change before a round.
const DEBOUNCE: Duration = Duration::from_secs(3);

/// The repair task.
pub struct RepairTask {
    pub net: Network,
    pub store: Arc<dyn EventStore>,
    pub holdings: Arc<Holdings>,
    pub subscribers: Arc<Subscribers>,
    pub db: OutboxDb,
    pub settings: HomeSettings,
}

impl RepairTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut routing = self.net.routing_changes();
        let mut known: HashMap<PublicKey, HashSet<PeerId>> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
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
            self.round(&mut known).await;
        }
    }

    async fn round(&self, known: &mut HashMap<PublicKey, HashSet<PeerId>>) {
        let me = self.net.peer_id();
        let authors = self.holdings.authors();
        let held: HashSet<&PublicKey> = authors.iter().collect();
        known.retain(|a, _| held.contains(a));
        for author in authors {
            let set = match self.net.home_set(author, true).await {
                Ok(set) => set,
                Err(e) => {
                    debug!(%author, error = %e, "repair: no home set");
                    continue;
                }
            };
            let others: Vec<&Member> = set.members.iter().filter(|m| m.peer != me).collect();
            if set.contains(&me) {
                let seen = known.entry(author).or_default();
                for m in others.iter().filter(|m| !seen.contains(&m.peer)) {
                    // The first round after start has no memory: hand off to everyone.
                    self.hand_off(author, m).await;
                }
                *seen = set.members.iter().map(|m| m.peer).collect();
            } else {
                info!(%author, "left this author's home set: handing its events over");
                for m in &others {
                    self.hand_off(author, m).await;
                }
                self.tell_followers(author).await;
                self.holdings.release(&author).await;
                known.remove(&author);
            }
        }
    }

    /// Pushes `author`'s recent events and inbox to `member`.
    async fn hand_off(&self, author: PublicKey, member: &Member) {
        let filters = vec![
            Filter::new().author(author).limit(HANDOFF),
            Filter::new().pubkey(author).limit(HANDOFF),
        ];
        let events = match self.store.query_json(filters).await {
            Ok(events) => events,
            Err(e) => return debug!(%author, error = %e, "repair: cannot read events"),
        };
        let total = events.len();
        let mut taken = 0;
        for chunk in events.chunks(BATCH) {
            let request = Request::new(RequestBody::Push {
                events: chunk.to_vec(),
            });
            match self
                .net
                .request(member.peer, member.addrs.clone(), request)
                .await
            {
                Ok(d) => match d.response.body {
                    ResponseBody::Ack { results } => {
                        taken += results.iter().filter(|r| r.is_none()).count()
                    }
                    other => {
                        debug!(peer = %member.peer, answer = ?other, "repair: hand-off refused");
                        return;
                    }
                },
                Err(e) => {
                    debug!(peer = %member.peer, error = %e, "repair: member unreachable");
                    return;
                }
            }
        }
        debug!(%author, peer = %member.peer, total, taken, "handed events over");
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

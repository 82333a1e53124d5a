//! Home-set lookups inside the actor: a network lookup (Kademlia's closest-peers query
//! on the user's key) with a short cache and one query per user at a time, and the local
//! view (this node's routing table only) used to decide membership and to answer
//! redirects without a network round trip. Bootstrap nodes (they store nothing) are never
//! candidates; this node is one when it is a DHT server. The user's own node is never a
//! member of its own home set (the set is there for when that node is away): it is known
//! from any valid home record this node saw, else looked up alongside the closest peers.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::kad::{self, QueryId};
use libp2p::PeerId;
use starling_proto::PublicKey;
use tokio::sync::oneshot;
use tracing::debug;

use super::Actor;
use crate::home::dht_key;
use crate::homeset::{closest, rank, HomeSet, Member};
use crate::NetError;

pub(crate) type HomeReply = oneshot::Sender<Result<HomeSet, NetError>>;

/// A home-set lookup in flight: its closest-peers query, and the home-record query that
/// finds the user's own node when it is not known yet.
struct Pending {
    author: PublicKey,
    replies: Vec<HomeReply>,
    peers: Option<Vec<kad::PeerInfo>>,
    record_query: Option<QueryId>,
}

/// Lookups in flight and recent answers.
#[derive(Default)]
pub(super) struct HomeLookups {
    pending: HashMap<QueryId, Pending>,
    by_author: HashMap<PublicKey, QueryId>,
    /// Home-record queries of pending lookups → their closest-peers query.
    records: HashMap<QueryId, QueryId>,
    /// Each user's own node, from the valid home records seen.
    nodes: HashMap<PublicKey, PeerId>,
    cache: HashMap<PublicKey, (Instant, HomeSet)>,
    /// Peers identified as bootstrap nodes.
    pub bootstraps: HashSet<PeerId>,
    /// Network lookups started since the node started (for `status`).
    pub started: u64,
}

/// What this node's routing table says about a user's home set.
#[derive(Debug, Clone)]
pub struct LocalView {
    /// The closest candidates this node knows (itself included when it is one).
    pub set: HomeSet,
    /// How many known candidates are closer to the user's key than this node; `None` when
    /// this node is no candidate (a DHT client or a bootstrap node).
    pub rank: Option<usize>,
}

impl Actor {
    fn is_candidate_self(&self) -> bool {
        self.settings.full_node && self.swarm.behaviour().kad.mode() == kad::Mode::Server
    }

    fn self_member(&self) -> Member {
        Member {
            peer: *self.swarm.local_peer_id(),
            addrs: self.addrs.advertised_now(),
        }
    }

    /// Starts (or joins) a network lookup of `author`'s home set.
    pub(super) fn home_set(&mut self, author: PublicKey, fresh: bool, reply: HomeReply) {
        let ttl = self.settings.home.cache_ttl;
        if !fresh {
            if let Some((at, set)) = self.homes.cache.get(&author) {
                if at.elapsed() < ttl {
                    let _ = reply.send(Ok(set.clone()));
                    return;
                }
            }
        }
        if let Some(id) = self.homes.by_author.get(&author) {
            if let Some(p) = self.homes.pending.get_mut(id) {
                p.replies.push(reply);
                return;
            }
        }
        // A full closest-peers walk (Kademlia's k): members, authors and followers
        // must agree on the set, and a walk that stops once the first few closest
        // answered sees a different set from node to node while the network churns
        // (the churn benchmark lost deliveries to such disagreements).
        let kad = &mut self.swarm.behaviour_mut().kad;
        let id = kad.get_closest_peers(dht_key(&author));
        self.homes.started += 1;
        let record_query = (!self.homes.nodes.contains_key(&author))
            .then(|| kad.get_record(kad::RecordKey::new(&dht_key(&author))));
        if let Some(rid) = record_query {
            self.homes.records.insert(rid, id);
        }
        self.homes.by_author.insert(author, id);
        self.homes.pending.insert(
            id,
            Pending {
                author,
                replies: vec![reply],
                peers: None,
                record_query,
            },
        );
    }

    /// Notes `author`'s own node, from a valid home record.
    pub(super) fn learn_node(&mut self, author: PublicKey, peer: PeerId) {
        self.homes.nodes.insert(author, peer);
    }

    /// Whether `id` is the home-record query of a home-set lookup.
    pub(super) fn is_home_record_query(&self, id: &QueryId) -> bool {
        self.homes.records.contains_key(id)
    }

    /// A home-set lookup's home-record query ended (what it found was already learnt).
    pub(super) fn home_record_done(&mut self, id: QueryId) {
        if let Some(closest) = self.homes.records.remove(&id) {
            if let Some(p) = self.homes.pending.get_mut(&closest) {
                p.record_query = None;
            }
            self.maybe_answer(closest);
        }
    }

    /// A closest-peers query ended with these peers (also on timeout: the best found).
    pub(super) fn home_set_found(&mut self, id: QueryId, peers: Vec<kad::PeerInfo>) {
        if let Some(p) = self.homes.pending.get_mut(&id) {
            p.peers = Some(peers);
            self.maybe_answer(id);
        }
    }

    /// Answers lookup `id` once both of its queries are done.
    fn maybe_answer(&mut self, id: QueryId) {
        let ready = self
            .homes
            .pending
            .get(&id)
            .is_some_and(|p| p.peers.is_some() && p.record_query.is_none());
        if !ready {
            return;
        }
        let Some(Pending {
            author,
            replies,
            peers,
            ..
        }) = self.homes.pending.remove(&id)
        else {
            return;
        };
        self.homes.by_author.remove(&author);
        let own = self.homes.nodes.get(&author).copied();
        let mut candidates: Vec<Member> = peers
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !self.homes.bootstraps.contains(&p.peer_id) && Some(p.peer_id) != own)
            .map(|p| Member {
                peer: p.peer_id,
                addrs: p.addrs,
            })
            .collect();
        if self.is_candidate_self() && own != Some(*self.swarm.local_peer_id()) {
            candidates.push(self.self_member());
        }
        let set = closest(&author, candidates, self.settings.home.replicas);
        debug!(%author, members = set.members.len(), "home set looked up");
        let answer = if set.members.is_empty() {
            Err(NetError::NoHomeSet(author.to_hex()))
        } else {
            self.homes
                .cache
                .insert(author, (Instant::now(), set.clone()));
            Ok(set)
        };
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// `author`'s home set as this node's routing table sees it.
    pub(super) fn local_home(&mut self, author: &PublicKey) -> LocalView {
        let me = *self.swarm.local_peer_id();
        let mut candidates: Vec<Member> = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                candidates.push(Member {
                    peer: *entry.node.key.preimage(),
                    addrs: entry.node.value.iter().cloned().collect(),
                });
            }
        }
        let own = self.homes.nodes.get(author).copied();
        candidates.retain(|m| !self.homes.bootstraps.contains(&m.peer) && Some(m.peer) != own);
        let rank = (self.is_candidate_self() && own != Some(me))
            .then(|| rank(author, &me, candidates.iter().map(|m| m.peer)));
        if rank.is_some() {
            candidates.push(self.self_member());
        }
        LocalView {
            set: closest(author, candidates, self.settings.home.replicas),
            rank,
        }
    }

    /// Forgets cached home sets that name `peer` (it went away or refused).
    pub(super) fn forget_member(&mut self, peer: &PeerId) {
        self.homes.cache.retain(|_, (_, set)| !set.contains(peer));
    }
}

//! Home sets (DESIGN.md, "Home sets"): the R reachable nodes closest, by Kademlia's XOR
//! distance, to a user's key keep that user's events besides the user's own node.
//!
//! The key is the user's home-record DHT key ([`dht_key`]), so the home set is the head of
//! the list of nodes that also hold the user's home record; distance is measured as
//! Kademlia measures it (the SHA-256 of the key against the SHA-256 of each PeerId).
//! Only DHT servers (nodes with a confirmed public address) are candidates, and bootstrap
//! nodes, which store no events, are skipped. Two nodes may see slightly different sets
//! while the network changes; members re-check and repair, and writers need only a quorum.

use libp2p::kad::KBucketKey;
use libp2p::{Multiaddr, PeerId};
use starling_proto::PublicKey;

use crate::home::dht_key;

/// One node of a home set and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
}

/// The home set of one user, closest (the primary) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeSet {
    pub author: PublicKey,
    pub members: Vec<Member>,
}

impl HomeSet {
    /// Whether `peer` is one of the members.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.members.iter().any(|m| m.peer == *peer)
    }

    /// The primary (closest) member.
    pub fn primary(&self) -> Option<&Member> {
        self.members.first()
    }
}

/// The Kademlia key a user's home set is measured against.
pub fn target(author: &PublicKey) -> KBucketKey<Vec<u8>> {
    KBucketKey::new(dht_key(author))
}

/// Sorts `candidates` by distance to `author`'s key, drops duplicates and keeps the
/// closest `replicas`.
pub fn closest(author: &PublicKey, mut candidates: Vec<Member>, replicas: usize) -> HomeSet {
    let key = target(author);
    candidates.sort_by_key(|m| key.distance(&KBucketKey::from(m.peer)));
    candidates.dedup_by_key(|m| m.peer);
    candidates.truncate(replicas);
    HomeSet {
        author: *author,
        members: candidates,
    }
}

/// How many of `others` are closer to `author`'s key than `me` is.
pub fn rank(author: &PublicKey, me: &PeerId, others: impl IntoIterator<Item = PeerId>) -> usize {
    let key = target(author);
    let mine = key.distance(&KBucketKey::from(*me));
    others
        .into_iter()
        .filter(|p| p != me && key.distance(&KBucketKey::from(*p)) < mine)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::Keys;

    fn member(peer: PeerId) -> Member {
        Member {
            peer,
            addrs: Vec::new(),
        }
    }

    #[test]
    fn closest_first_and_rank_agree() {
        let author = Keys::generate().public_key();
        let peers: Vec<PeerId> = (0..12).map(|_| PeerId::random()).collect();
        let set = closest(&author, peers.iter().copied().map(member).collect(), 3);
        assert_eq!(set.members.len(), 3);
        for (i, m) in set.members.iter().enumerate() {
            assert_eq!(rank(&author, &m.peer, peers.iter().copied()), i);
        }
        let outside = peers.iter().find(|p| !set.contains(p)).unwrap();
        assert!(rank(&author, outside, peers.iter().copied()) >= 3);
        // Order does not depend on the input order.
        let mut reversed: Vec<Member> = peers.iter().copied().map(member).collect();
        reversed.reverse();
        assert_eq!(closest(&author, reversed, 3), set);
    }
}

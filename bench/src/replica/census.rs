//! What every node holds once the network settled. Each node is asked for its `status`
//! (authors it keeps as a home-set member, subscribers, outbox) and its store's figures,
//! and every event in its store is put in one class, first match wins: its owner's own,
//! of an author whose home set (computed here from every node's PeerId, as a full
//! routing table would see it) includes the node, of an author the owner follows, tagging
//! the owner (its inbox), tagging a user whose home set includes the node (that user's
//! inbox kept here), of (or tagging) a user whose hold range includes the node, or other
//! (e.g. kept from a role the node has since handed over). The same pass counts each author's notes at each node,
//! which gives every author's copies.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;
use starling_net::homeset::{self, Member};
use starling_net::served::ServedStatus;
use starling_net::sim::SimNode;
use starling_net::NetNodeStatus;
use starling_proto::{Filter, Kind, PublicKey};
use starling_store::EventStore;

use crate::graph::Graph;

/// One node's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFigures {
    pub node: usize,
    /// Users following this node's owner, and followed by it (the graph).
    pub followers: usize,
    pub follows: usize,
    /// Authors kept as a home-set member, as the node's `status` says.
    pub home_for: usize,
    /// Authors whose computed home set includes the node.
    pub home_for_computed: usize,
    /// Peers with a live subscription here, and followed authors subscribed to.
    pub subscribers: usize,
    pub subscribed: usize,
    pub outbox_pending: u64,
    pub outbox_given_up: u64,
    /// Store figures: events and their JSON bytes, and the database file on disk.
    pub events: u64,
    pub event_bytes: u64,
    pub disk_bytes: u64,
    pub own: Class,
    pub member: Class,
    pub followee: Class,
    pub inbox: Class,
    /// Tagging a user whose home set includes the node (that user's inbox, kept here).
    pub member_inbox: Class,
    /// Of (or tagging) a user whose home set does not include the node but whose hold
    /// range does (the R + 2 closest: a node takes the role up to two ranks beyond R).
    pub slack: Class,
    pub other: Class,
    /// Peer requests the node answered since it started, by kind (its `status`).
    pub served: ServedStatus,
    /// Bytes the node wrote to memory connections, from its start and during posting.
    pub sent_total: u64,
    pub sent_posting: u64,
}

/// Events of one class and their JSON bytes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Class {
    pub events: u64,
    pub bytes: u64,
}

impl Class {
    fn add(&mut self, bytes: usize) {
        self.events += 1;
        self.bytes += bytes as u64;
    }
}

impl NodeFigures {
    /// Events of users other than the owner.
    pub fn others(&self) -> Class {
        let all = [
            self.member,
            self.followee,
            self.inbox,
            self.member_inbox,
            self.slack,
            self.other,
        ];
        Class {
            events: all.iter().map(|c| c.events).sum(),
            bytes: all.iter().map(|c| c.bytes).sum(),
        }
    }
}

/// Ranks beyond R at which a node still takes a home-set role (`SLACK` in
/// `crates/net/src/held.rs`).
pub const HOLD_SLACK: usize = 2;

/// Who is in whose home set, computed from every node's PeerId: `members[a]` are the
/// node indexes of the `replicas` nodes closest to author `a` (its own node excluded):
/// its home set with R, its hold range with R + [`HOLD_SLACK`].
pub fn home_sets(nodes: &[SimNode], replicas: usize) -> Vec<Vec<usize>> {
    let peers: Vec<_> = nodes.iter().map(|n| n.net.network().peer_id()).collect();
    let index: HashMap<_, usize> = peers.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    nodes
        .iter()
        .enumerate()
        .map(|(a, node)| {
            let candidates = (peers.iter().enumerate())
                .filter(|(i, _)| *i != a)
                .map(|(_, p)| Member {
                    peer: *p,
                    addrs: Vec::new(),
                })
                .collect();
            let set = homeset::closest(&node.keys.public_key(), candidates, replicas);
            set.members.iter().map(|m| index[&m.peer]).collect()
        })
        .collect()
}

/// The parts of a stored event the classes need.
#[derive(serde::Deserialize)]
struct Peek {
    pubkey: PublicKey,
    kind: u16,
    #[serde(default)]
    tags: Vec<Vec<String>>,
}

/// Node `i`'s figures, and its count of notes by each author.
pub async fn node(
    i: usize,
    nodes: &[SimNode],
    graph: &Graph,
    (members, range): (&[Vec<usize>], &[Vec<usize>]),
    status: &NetNodeStatus,
) -> Result<(NodeFigures, Vec<u64>)> {
    let node = &nodes[i];
    let author_index: HashMap<PublicKey, usize> = (nodes.iter().enumerate())
        .map(|(j, n)| (n.keys.public_key(), j))
        .collect();
    let stats = node.store.stats().await?;
    let mut f = NodeFigures {
        node: i,
        followers: graph.followers[i].len(),
        follows: graph.follows[i].len(),
        home_for: status.home_for,
        home_for_computed: members.iter().filter(|m| m.contains(&i)).count(),
        subscribers: status.subscribers,
        subscribed: status.subscribed,
        outbox_pending: status.outbox.pending,
        outbox_given_up: status.outbox.given_up,
        events: stats.events,
        event_bytes: stats.event_bytes,
        disk_bytes: disk_bytes(&node.dir),
        sent_total: node.traffic.sent(),
        served: status.requests_served,
        ..NodeFigures::default()
    };
    let mut notes_by = vec![0u64; nodes.len()];
    // One filter per author: the store caps each filter's answer, not the query's.
    let filters = nodes
        .iter()
        .map(|n| Filter::new().author(n.keys.public_key()).limit(5_000))
        .collect();
    for json in node.store.query_json(filters).await? {
        let peek: Peek = serde_json::from_str(&json)?;
        let Some(&a) = author_index.get(&peek.pubkey) else {
            f.other.add(json.len());
            continue;
        };
        if peek.kind == Kind::TextNote.as_u16() {
            notes_by[a] += 1;
        }
        let tagged: Vec<usize> = (peek.tags.iter())
            .filter(|t| t.len() >= 2 && t[0] == "p")
            .filter_map(|t| PublicKey::from_hex(&t[1]).ok())
            .filter_map(|pk| author_index.get(&pk).copied())
            .collect();
        let class = if a == i {
            &mut f.own
        } else if members[a].contains(&i) {
            &mut f.member
        } else if graph.follows(i, a) {
            &mut f.followee
        } else if tagged.contains(&i) {
            &mut f.inbox
        } else if tagged.iter().any(|&t| members[t].contains(&i)) {
            &mut f.member_inbox
        } else if std::iter::once(a)
            .chain(tagged)
            .any(|t| range[t].contains(&i))
        {
            &mut f.slack
        } else {
            &mut f.other
        };
        class.add(json.len());
    }
    Ok((f, notes_by))
}

/// Bytes of the node's event database file (its write-ahead log left out: that is a
/// few MB of recent pages whatever the store holds).
fn disk_bytes(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("events.db")).map_or(0, |m| m.len())
}

/// One author's copies: nodes other than its own holding every note it posted, split
/// by why they hold them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Copies {
    pub posted: u64,
    pub at_members: usize,
    pub at_followers: usize,
    /// Whole copies at nodes that are neither members nor followers.
    pub elsewhere: usize,
    /// Members (computed) missing some of the author's notes.
    pub members_incomplete: usize,
}

/// Every author's copies from the per-node note counts (`notes[node][author]`).
pub fn copies(notes: &[Vec<u64>], graph: &Graph, members: &[Vec<usize>]) -> Vec<Copies> {
    (0..notes.len())
        .map(|a| {
            let posted = notes[a][a];
            let mut c = Copies {
                posted,
                ..Copies::default()
            };
            for (n, counts) in notes.iter().enumerate() {
                if n == a {
                    continue;
                }
                let whole = posted > 0 && counts[a] >= posted;
                let member = members[a].contains(&n);
                match (whole, member, graph.follows(n, a)) {
                    (true, true, _) => c.at_members += 1,
                    (true, false, true) => c.at_followers += 1,
                    (true, false, false) => c.elsewhere += 1,
                    (false, true, _) => c.members_incomplete += 1,
                    _ => {}
                }
            }
            c
        })
        .collect()
}

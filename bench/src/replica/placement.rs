//! Home-set placement at a larger scale than the network that runs, computed without
//! running it: seeded PeerIds for `nodes` reachable nodes and seeded keys for the users
//! they serve, each user's home set taken as the R nodes closest to its key by Kademlia's
//! XOR distance (as `starling_net::homeset` measures it), and the number of users each
//! node serves counted. For a share `s` of users running reachable nodes there are
//! `nodes / s` users, so a node serves R / s of them on average; the distribution around
//! that mean is the skew the projection in `bench/RESULTS.md` uses. (The users' own
//! nodes are not excluded: a small change at these sizes.)

use anyhow::Result;
use rand::rngs::StdRng;
use serde::Serialize;
use starling_net::homeset;
use starling_net::libp2p::kad::{KBucketDistance, KBucketKey};
use starling_net::libp2p::PeerId;

use crate::gen::derive_keys;
use crate::netsim;
use crate::replica::report::Dist;

/// Label of the simulated users' keys.
const USER_KEYS: u64 = 0x706c_6163_6500_0000;

/// Users served per node for one share of reachable nodes.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub nodes: usize,
    pub users: usize,
    /// Share of users that run a reachable node (`nodes / users`).
    pub share: f64,
    /// Users a node is among the R closest of.
    pub served: Dist,
    /// Users a node is among the R + 2 closest of (the range where it takes the role).
    pub in_hold_range: Dist,
}

/// Places `nodes / share` users on `nodes` nodes, for each share.
pub fn simulate(
    nodes: usize,
    shares: &[f64],
    (replicas, slack): (usize, usize),
    seed: u64,
    rng: &mut StdRng,
) -> Result<Vec<Placement>> {
    let peers = (0..nodes)
        .map(|_| {
            Ok(KBucketKey::from(PeerId::from(
                netsim::node_key(rng)?.public(),
            )))
        })
        .collect::<Result<Vec<KBucketKey<PeerId>>>>()?;
    let most = shares
        .iter()
        .map(|s| (nodes as f64 / s).ceil() as usize)
        .max()
        .unwrap_or(0);
    let users = (0..most as u64)
        .map(|i| derive_keys(seed, USER_KEYS, i).map(|k| homeset::target(&k.public_key())))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for &share in shares {
        let count = (nodes as f64 / share).ceil() as usize;
        let (served, range) = count_served(&peers, &users[..count], replicas, replicas + slack);
        out.push(Placement {
            nodes,
            users: count,
            share,
            served: Dist::of(served),
            in_hold_range: Dist::of(range),
        });
    }
    Ok(out)
}

/// For each node, how many users it is among the `r` and among the `r2` closest of.
fn count_served(
    peers: &[KBucketKey<PeerId>],
    users: &[KBucketKey<Vec<u8>>],
    r: usize,
    r2: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut served = vec![0f64; peers.len()];
    let mut range = vec![0f64; peers.len()];
    let mut dist: Vec<(KBucketDistance, usize)> = Vec::with_capacity(peers.len());
    for user in users {
        dist.clear();
        dist.extend(peers.iter().enumerate().map(|(i, p)| (user.distance(p), i)));
        let r2 = r2.min(dist.len());
        if r2 == 0 {
            continue;
        }
        dist.select_nth_unstable(r2 - 1);
        let closest = &mut dist[..r2];
        closest.sort_unstable();
        for (rank, (_, i)) in closest.iter().enumerate() {
            range[*i] += 1.0;
            if rank < r {
                served[*i] += 1.0;
            }
        }
    }
    (served, range)
}

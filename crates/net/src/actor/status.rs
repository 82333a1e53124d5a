//! The status snapshot: peers and their paths, addresses, reachability, and an estimate of
//! the DHT's size from the routing table.

use super::Actor;
use crate::handle::{NetStatus, PeerInfo};

impl Actor {
    pub(super) fn status(&mut self) -> NetStatus {
        let mut peers: Vec<PeerInfo> = self
            .conns
            .values()
            .map(|c| PeerInfo {
                peer: c.peer.to_string(),
                addr: c.addr.to_string(),
                path: c.path,
            })
            .collect();
        peers.sort_by(|a, b| a.peer.cmp(&b.peer));
        peers.dedup_by(|a, b| a.peer == b.peer && a.path == b.path);
        let (routing, estimate) = self.dht_size();
        let to_strings = |v: &[libp2p::Multiaddr]| v.iter().map(|a| a.to_string()).collect();
        NetStatus {
            peer_id: self.swarm.local_peer_id().to_string(),
            reachability: self.addrs.reachability(),
            dht_mode: match self.swarm.behaviour().kad.mode() {
                libp2p::kad::Mode::Server => "server",
                libp2p::kad::Mode::Client => "client",
            },
            listen_addrs: to_strings(&self.addrs.listen),
            external_addrs: to_strings(&self.addrs.external),
            advertised_addrs: to_strings(&self.addrs_advertised()),
            peers,
            dht_routing_peers: routing,
            dht_size_estimate: estimate,
            banned_peers: self.strikes.banned(),
            broadcast: self.swarm.behaviour().gossip.is_enabled(),
            home_set_lookups: self.homes.started,
        }
    }

    fn addrs_advertised(&self) -> Vec<libp2p::Multiaddr> {
        self.addrs.advertised_now()
    }

    /// Routing-table size, and the network size it suggests: a k-bucket covering the
    /// distances [2^i, 2^(i+1)) spans a 2^(i-256) share of the key space, so a bucket that
    /// is not full (it holds every peer at that distance) with n entries suggests
    /// n * 2^(256-i) nodes. The farthest such bucket counts the most peers.
    fn dht_size(&mut self) -> (usize, u64) {
        let mut routing = 0usize;
        let mut farthest: Option<(u32, usize)> = None;
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            let n = bucket.num_entries();
            routing += n;
            let Some(i) = bucket.range().0.ilog2() else {
                continue;
            };
            if n > 0 && n < 20 && farthest.is_none_or(|(j, _)| i > j) {
                farthest = Some((i, n));
            }
        }
        let estimate = farthest.map_or(0, |(i, n)| {
            let shift = 256u32.saturating_sub(i);
            if shift >= 40 {
                u64::MAX
            } else {
                (n as u64) << shift
            }
        });
        // A routing table with room in every bucket knows the whole network.
        if routing < 20 {
            return (routing, routing as u64 + 1);
        }
        (routing, estimate.max(routing as u64) + 1)
    }
}

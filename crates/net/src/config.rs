//! Validated network settings, built by the binary from flags and `config.toml` and passed
//! down to the swarm and the delivery tasks. Also parses `--bootstrap` values.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use starling_core::Rate;

/// Everything the network layer needs to know, with defaults for a personal node.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// Addresses the swarm listens on.
    pub listen: Vec<Multiaddr>,
    /// Nodes dialled at start to join the network.
    pub bootstrap: Vec<Multiaddr>,
    /// Trust that this node is reachable: DHT server mode and relay service from the start,
    /// and listen addresses count as external ones.
    pub public: bool,
    /// Join the broadcast gossipsub topic (every public post of every broadcasting node).
    pub broadcast: bool,
    /// Most established connections.
    pub max_connections: u32,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
    /// Kademlia replication factor (how many nodes hold each home record).
    pub kad_replication: usize,
    /// How often the node republishes its home record.
    pub home_refresh: Duration,
    /// How long a live subscription at an author's node lasts unless renewed.
    pub subscription_lease: Duration,
    /// How long a NATed node waits for a confirmed external address before it listens
    /// through a relay.
    pub relay_after: Duration,
    pub outbox: OutboxSettings,
    pub home: HomeSettings,
    /// Whether this node stores events and serves requests (a full node) or only does DHT
    /// and relay work (a bootstrap node, never chosen into a home set).
    pub full_node: bool,
    /// Counts the bytes this node sends over the in-memory transport (benchmarks).
    pub memory_traffic: crate::traffic::Traffic,
    /// Each peer's budget for requests to this node (see [`crate::budget`]).
    pub peer_requests: Rate,
    /// Most requests of one peer served at once.
    pub peer_max_in_flight: usize,
}

/// Retry policy of the durable outbox.
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Delay before the first retry; doubled after each failure.
    pub first_retry: Duration,
    /// Longest delay between two tries.
    pub max_retry: Duration,
    /// After this long an undelivered event is given up.
    pub give_up: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(60 * 60),
            give_up: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// Home sets (DESIGN.md): who keeps a user's events besides the user's own node.
#[derive(Debug, Clone, Copy)]
pub struct HomeSettings {
    /// Reachable nodes closest to a user's key that keep the user's events (R).
    pub replicas: usize,
    /// Acknowledgements from home-set members an event needs before the outbox lets it go.
    pub quorum: usize,
    /// Events of one author a member keeps for it (replaceable kinds do not count), and,
    /// separately, events addressed to the user (their inbox: replies, mentions,
    /// reactions, gift wraps).
    pub quota_events: u64,
    /// How long a looked-up home set is reused.
    pub cache_ttl: Duration,
    /// How often a member re-checks its membership and repairs the other members' copies.
    pub repair_every: Duration,
}

impl Default for HomeSettings {
    fn default() -> Self {
        Self {
            replicas: 3,
            quorum: 2,
            quota_events: 20_000,
            cache_ttl: Duration::from_secs(60),
            repair_every: Duration::from_secs(5 * 60),
        }
    }
}

impl Default for NetSettings {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            public: false,
            broadcast: false,
            max_connections: 256,
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            kad_replication: 20,
            home_refresh: Duration::from_secs(30 * 60),
            subscription_lease: Duration::from_secs(10 * 60),
            relay_after: Duration::from_secs(10),
            outbox: OutboxSettings::default(),
            home: HomeSettings::default(),
            full_node: true,
            memory_traffic: Default::default(),
            peer_requests: Rate::new(100, 1000),
            peer_max_in_flight: 32,
        }
    }
}

/// Parses a `--bootstrap` value: a multiaddr (`/ip4/1.2.3.4/tcp/4001/p2p/12D3…`) or, as
/// NostrP2P's `-b` took it, `host:port` (an IP address or a DNS name).
pub fn parse_bootstrap(value: &str) -> Result<Multiaddr, String> {
    if value.starts_with('/') {
        return value
            .parse()
            .map_err(|e| format!("{value:?} is not a valid multiaddr: {e}"));
    }
    if let Ok(sock) = value.parse::<SocketAddr>() {
        let ip = match sock.ip() {
            IpAddr::V4(ip) => Protocol::Ip4(ip),
            IpAddr::V6(ip) => Protocol::Ip6(ip),
        };
        return Ok(Multiaddr::empty().with(ip).with(Protocol::Tcp(sock.port())));
    }
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| format!("{value:?} is neither a multiaddr nor host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{value:?}: {port:?} is not a port number"))?;
    if host.is_empty() {
        return Err(format!("{value:?}: the host is missing"));
    }
    Ok(Multiaddr::empty()
        .with(Protocol::Dns(host.to_owned().into()))
        .with(Protocol::Tcp(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_forms() {
        assert_eq!(
            parse_bootstrap("10.0.0.1:4001").unwrap().to_string(),
            "/ip4/10.0.0.1/tcp/4001"
        );
        assert_eq!(
            parse_bootstrap("[::1]:4001").unwrap().to_string(),
            "/ip6/::1/tcp/4001"
        );
        assert_eq!(
            parse_bootstrap("boot.example:4001").unwrap().to_string(),
            "/dns/boot.example/tcp/4001"
        );
        assert!(parse_bootstrap("/ip4/10.0.0.1/tcp/4001").is_ok());
        assert!(parse_bootstrap("nonsense").is_err());
        assert!(parse_bootstrap("host:notaport").is_err());
        assert!(parse_bootstrap("/bogus").is_err());
    }
}

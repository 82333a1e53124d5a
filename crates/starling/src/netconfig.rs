//! The `[network]` section of `config.toml` (stage one: raw, defaulted, documented) and
//! its validation, with the `run` flags applied, into the network crate's settings.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use starling_core::Rate;
use starling_net::{parse_bootstrap, HomeSettings, NetSettings, OutboxSettings};

/// The default peer-to-peer port.
pub const DEFAULT_P2P_PORT: u16 = 4747;

/// `[network]`: the peer-to-peer overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Run the peer-to-peer network at all.
    pub enabled: bool,
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Nodes to join through: multiaddrs or host:port.
    pub bootstrap: Vec<String>,
    /// This node is reachable from the internet (skip reachability checks).
    pub public: bool,
    /// Join the broadcast topic (every public post of every broadcasting node).
    pub broadcast: bool,
    pub max_connections: u32,
    pub subscription_lease_secs: u64,
    pub home_refresh_secs: u64,
    pub relay_after_secs: u64,
    pub outbox_first_retry_secs: u64,
    pub outbox_max_retry_secs: u64,
    pub outbox_give_up_secs: u64,
    pub home_replicas: usize,
    pub home_quorum: usize,
    pub home_quota_events: u64,
    pub home_repair_secs: u64,
    /// Each peer's budget for requests to this node.
    pub peer_requests: Rate,
    pub peer_max_in_flight: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let n = NetSettings::default();
        let o = OutboxSettings::default();
        let h = HomeSettings::default();
        Self {
            enabled: true,
            listen: vec![format!("/ip4/0.0.0.0/tcp/{DEFAULT_P2P_PORT}")],
            bootstrap: Vec::new(),
            public: false,
            broadcast: false,
            max_connections: n.max_connections,
            subscription_lease_secs: n.subscription_lease.as_secs(),
            home_refresh_secs: n.home_refresh.as_secs(),
            relay_after_secs: n.relay_after.as_secs(),
            outbox_first_retry_secs: o.first_retry.as_secs(),
            outbox_max_retry_secs: o.max_retry.as_secs(),
            outbox_give_up_secs: o.give_up.as_secs(),
            home_replicas: h.replicas,
            home_quorum: h.quorum,
            home_quota_events: h.quota_events,
            home_repair_secs: h.repair_every.as_secs(),
            peer_requests: n.peer_requests,
            peer_max_in_flight: n.peer_max_in_flight,
        }
    }
}

/// `run`'s network flags; each replaces the config's value when given.
#[derive(Debug, Clone, Default)]
pub struct NetworkFlags {
    pub listen: Vec<String>,
    pub bootstrap: Vec<String>,
    pub public: bool,
    pub broadcast: bool,
}

impl NetworkConfig {
    /// Validated settings with `flags` applied.
    pub fn settings(&self, flags: &NetworkFlags) -> anyhow::Result<NetSettings> {
        let listen = if flags.listen.is_empty() {
            &self.listen
        } else {
            &flags.listen
        };
        let listen = listen
            .iter()
            .map(|a| {
                parse_bootstrap(a)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("listen address {a:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if listen.is_empty() {
            bail!("network: at least one listen address is needed");
        }
        let bootstrap = self
            .bootstrap
            .iter()
            .chain(&flags.bootstrap)
            .map(|a| parse_bootstrap(a).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let secs = |s: u64| Duration::from_secs(s.max(1));
        if self.home_replicas == 0 || self.home_replicas > 20 {
            bail!("network: home_replicas must be between 1 and 20");
        }
        if self.home_quorum == 0 || self.home_quorum > self.home_replicas {
            bail!("network: home_quorum must be between 1 and home_replicas");
        }
        Ok(NetSettings {
            listen,
            bootstrap,
            public: self.public || flags.public,
            broadcast: self.broadcast || flags.broadcast,
            max_connections: self.max_connections.max(8),
            subscription_lease: secs(self.subscription_lease_secs.max(30)),
            home_refresh: secs(self.home_refresh_secs.max(60)),
            relay_after: secs(self.relay_after_secs),
            outbox: OutboxSettings {
                first_retry: secs(self.outbox_first_retry_secs),
                max_retry: secs(self.outbox_max_retry_secs),
                give_up: secs(self.outbox_give_up_secs),
            },
            home: HomeSettings {
                replicas: self.home_replicas,
                quorum: self.home_quorum,
                quota_events: self.home_quota_events.max(100),
                repair_every: secs(self.home_repair_secs.max(10)),
                ..HomeSettings::default()
            },
            peer_requests: self.peer_requests,
            peer_max_in_flight: self.peer_max_in_flight.max(1),
            ..NetSettings::default()
        })
    }

    /// The `[network]` part of the commented config template.
    pub fn template() -> String {
        let d = Self::default();
        format!(
            r#"
[network]
# Run the peer-to-peer network. With false the node is a local relay only.
enabled = {enabled}
# Where other nodes reach this one (multiaddrs; `--listen` replaces them).
listen = ["{listen}"]
# Nodes to join the network through, as multiaddrs or host:port (`--bootstrap` adds
# more). The first node of a network has none.
bootstrap = []
# Set to true on a machine reachable from the internet (a VPS): the node then serves
# the DHT and relays for NATed nodes at once instead of testing its reachability first.
public = {public}
# Join the broadcast topic, which carries every public post of every broadcasting node
# (NostrP2P's behaviour; suits small communities, costs bandwidth).
broadcast = {broadcast}
# Most simultaneous peer connections.
max_connections = {max_connections}
# How long a follow subscription at an author's node lasts before it is renewed.
subscription_lease_secs = {lease}
# How often this node republishes its home record (npub -> node) in the DHT.
home_refresh_secs = {refresh}
# How long a node without a confirmed public address waits before it reserves a relay.
relay_after_secs = {relay_after}
# Replies, mentions and reactions to users whose node is offline wait in the outbox:
# first retry after this long, doubling up to the maximum, given up after the last.
outbox_first_retry_secs = {first}
outbox_max_retry_secs = {max}
outbox_give_up_secs = {give_up}
# Home sets: besides its own node, each user's events are kept by the reachable nodes
# closest to the user's key in the DHT, so followers read them and replies reach the
# user while the user's node is off. How many nodes keep them, how many must have taken
# an event before the outbox lets it go, how many events of one author this node keeps
# when it is one of those nodes (and, separately, of the user's inbox: replies, mentions,
# reactions, private messages), and how often it re-checks that role.
home_replicas = {replicas}
home_quorum = {quorum}
home_quota_events = {quota}
home_repair_secs = {repair}
# What one peer may ask of this node: a token bucket (a request costs 1, plus 1 per 10
# events pushed or 50 authors subscribed to; per_sec = 0 turns it off) and the most of its
# requests served at once. Requests over it are refused unread; a peer refused 100
# times within a minute earns a strike, and three strikes ban it for an hour (so do
# malformed messages and bad signatures).
peer_requests = {{ per_sec = {peer_rate}, burst = {peer_burst} }}
peer_max_in_flight = {peer_in_flight}
"#,
            enabled = d.enabled,
            listen = d.listen[0],
            public = d.public,
            broadcast = d.broadcast,
            max_connections = d.max_connections,
            lease = d.subscription_lease_secs,
            refresh = d.home_refresh_secs,
            relay_after = d.relay_after_secs,
            first = d.outbox_first_retry_secs,
            max = d.outbox_max_retry_secs,
            give_up = d.outbox_give_up_secs,
            replicas = d.home_replicas,
            quorum = d.home_quorum,
            quota = d.home_quota_events,
            repair = d.home_repair_secs,
            peer_rate = d.peer_requests.per_sec,
            peer_burst = d.peer_requests.burst,
            peer_in_flight = d.peer_max_in_flight,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_replace_listen_and_add_bootstrap() {
        let c = NetworkConfig {
            bootstrap: vec!["10.0.0.1:4747".into()],
            ..NetworkConfig::default()
        };
        let flags = NetworkFlags {
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: vec!["/ip4/10.0.0.2/tcp/4747".into()],
            public: true,
            broadcast: false,
        };
        let s = c.settings(&flags).unwrap();
        assert_eq!(s.listen.len(), 1);
        assert_eq!(s.listen[0].to_string(), "/ip4/127.0.0.1/tcp/0");
        assert_eq!(s.bootstrap.len(), 2);
        assert!(s.public);
        let bad = NetworkFlags {
            bootstrap: vec!["nope".into()],
            ..NetworkFlags::default()
        };
        assert!(c.settings(&bad).is_err());
    }
}

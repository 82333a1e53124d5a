//! The composed libp2p behaviour and the swarm built around it.
//!
//! One [`Behaviour`] holds every protocol a starling node speaks: connection limits and a
//! block list (hostile peers), identify, ping, Kademlia (home records), AutoNAT v2 client
//! and server (reachability), relay server and client plus DCUtR (NAT traversal),
//! request-response (starling's own messages, see `wire`) and, when broadcast mode is on,
//! gossipsub. Only the swarm actor (`actor`) touches the swarm built here.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::time::Duration;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::kad::store::{MemoryStore, MemoryStoreConfig};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, kad, noise, ping,
    relay, tcp, yamux, StreamProtocol, Swarm, SwarmBuilder, Transport,
};

use crate::config::NetSettings;
use crate::keep_alive;
use crate::traffic::Counted;
use crate::wire::{StarlingCodec, PROTOCOL};
use crate::NetError;

/// identify's agent name of a full node.
pub const FULL_AGENT: &str = "starling";
/// identify's agent name of a bootstrap node, which is never chosen into a home set.
pub const BOOTSTRAP_AGENT: &str = "starling-bootstrap";

/// Kademlia protocol name: starling's own DHT, apart from IPFS's.
pub const KAD_PROTOCOL: &str = "/starling/kad/1.0.0";
/// Identify protocol version string.
const IDENTIFY_VERSION: &str = "/starling/id/1.0.0";
/// The gossipsub topic of broadcast mode.
pub const BROADCAST_TOPIC: &str = "starling/broadcast/1";

pub type Gossip =
    gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub keep_alive: keep_alive::Behaviour,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<MemoryStore>,
    pub autonat_client: Toggle<autonat::v2::client::Behaviour>,
    pub autonat_server: autonat::v2::server::Behaviour,
    pub relay_server: relay::Behaviour,
    pub relay_client: relay::client::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub rr: request_response::Behaviour<StarlingCodec>,
    pub gossip: Toggle<Gossip>,
}

/// Builds the swarm: TCP (and QUIC with the `quic` feature), the in-memory transport used
/// by tests and the scale bench, DNS, the relay client transport, and the behaviour.
pub fn build_swarm(key: Keypair, settings: &NetSettings) -> Result<Swarm<Behaviour>, NetError> {
    let builder = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(transport_error)?;
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let traffic = settings.memory_traffic.clone();
    let swarm = builder
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(MemoryTransport::default()
                .map(move |conn, _| Counted::new(conn, traffic.clone()))
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default()))
        })
        .map_err(transport_error)?
        .with_dns()
        .map_err(transport_error)?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(transport_error)?
        .with_behaviour(|key, relay_client| new_behaviour(key, relay_client, settings))
        .map_err(transport_error)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(settings.idle_timeout))
        .build();
    Ok(swarm)
}

fn transport_error(e: impl std::fmt::Display) -> NetError {
    NetError::Transport(e.to_string())
}

fn new_behaviour(
    key: &Keypair,
    relay_client: relay::client::Behaviour,
    settings: &NetSettings,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer = key.public().to_peer_id();
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(settings.max_connections))
        .with_max_established_per_peer(Some(4))
        .with_max_pending_incoming(Some(settings.max_connections / 2 + 8));

    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    kad_config
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_query_timeout(Duration::from_secs(20))
        .set_replication_factor(
            NonZeroUsize::new(settings.kad_replication).unwrap_or(NonZeroUsize::MIN),
        )
        .set_publication_interval(Some(Duration::from_secs(60 * 60)))
        .set_record_ttl(Some(Duration::from_secs(36 * 60 * 60)));
    let store_config = MemoryStoreConfig {
        max_records: 65_536,
        max_value_bytes: 16 * 1024,
        ..Default::default()
    };
    let mut kad = kad::Behaviour::with_config(
        peer,
        MemoryStore::with_config(peer, store_config),
        kad_config,
    );
    kad.set_mode(settings.public.then_some(kad::Mode::Server));

    let rr = request_response::Behaviour::with_codec(
        StarlingCodec::default(),
        [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(settings.request_timeout)
            .with_max_concurrent_streams(256),
    );

    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        keep_alive: Default::default(),
        blocked: Default::default(),
        identify: identify::Behaviour::new(
            identify::Config::new(IDENTIFY_VERSION.into(), key.public())
                .with_agent_version(format!(
                    "{}/{}",
                    if settings.full_node {
                        FULL_AGENT
                    } else {
                        BOOTSTRAP_AGENT
                    },
                    env!("CARGO_PKG_VERSION")
                ))
                .with_push_listen_addr_updates(true),
        ),
        // Liveness and RTT only (no keep-alive): once a minute is plenty, and at the
        // default 15 s the pings of a node's many DHT connections dominate idle traffic.
        ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(60))),
        kad,
        // A node told it is public has nothing to test.
        autonat_client: Toggle::from((!settings.public).then(Default::default)),
        autonat_server: Default::default(),
        relay_server: relay::Behaviour::new(peer, relay_config()),
        relay_client,
        dcutr: dcutr::Behaviour::new(peer),
        rr,
        gossip: Toggle::from(if settings.broadcast {
            Some(new_gossip(key)?)
        } else {
            None
        }),
    })
}

/// Relay v2's defaults (2 minutes and 128 KiB per circuit) suit hole punching only; a
/// starling node behind symmetric NAT may live on the relay path, so circuits last longer
/// and carry more.
fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: 256,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: 256,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(60 * 60),
        max_circuit_bytes: 64 * 1024 * 1024,
        ..relay::Config::default()
    }
}

fn new_gossip(key: &Keypair) -> Result<Gossip, Box<dyn std::error::Error + Send + Sync>> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(256 * 1024)
        .build()?;
    // Only our topic passes the filter: a peer subscribed to many other topics is not
    // ignored (gossipsub's default filter drops peers past 100 topics).
    let topic = gossipsub::IdentTopic::new(BROADCAST_TOPIC).hash();
    let filter = gossipsub::WhitelistSubscriptionFilter(HashSet::from([topic]));
    Ok(gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        config,
        filter,
    )?)
}

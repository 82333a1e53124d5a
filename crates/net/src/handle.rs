//! [`Network`]: the cheap, cloneable handle every other task uses to reach the swarm
//! actor. Each method sends one [`Command`] on a bounded channel and, where there is an
//! answer, waits for it on a oneshot channel. The actor ends when every handle is dropped
//! or the shutdown token fires.

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use starling_proto::PublicKey;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::actor::LocalView;
use crate::home::HomeRecord;
use crate::homeset::HomeSet;
use crate::wire::{Request, Response};
use crate::NetError;

/// What the handle asks of the actor.
#[derive(Debug)]
pub(crate) enum Command {
    Request {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
        reply: oneshot::Sender<Result<Delivered, NetError>>,
    },
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Resolve {
        author: PublicKey,
        reply: oneshot::Sender<Result<Option<HomeRecord>, NetError>>,
    },
    HomeSet {
        author: PublicKey,
        fresh: bool,
        reply: oneshot::Sender<Result<HomeSet, NetError>>,
    },
    LocalHome {
        author: PublicKey,
        reply: oneshot::Sender<LocalView>,
    },
    ForgetMember {
        peer: PeerId,
    },
    PublishHome {
        record: HomeRecord,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    GossipVerdict {
        message: libp2p::gossipsub::MessageId,
        source: PeerId,
        accept: bool,
    },
    Strike {
        peer: PeerId,
        reason: String,
    },
    Broadcast {
        json: String,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    KeepAlive {
        peer: PeerId,
        reason: crate::keep_alive::Reason,
        on: bool,
    },
}

/// A successful request: the answer and the path it took.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub response: Response,
    pub path: Path,
}

/// How a connection reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// A direct connection (dialled, accepted, or hole-punched).
    Direct,
    /// Through a relay's circuit.
    Relayed,
}

/// What this node knows about its own reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Not tested yet.
    Unknown,
    /// Reachable directly: an external address is confirmed (or `--public`).
    Public,
    /// Not reachable directly and no relay reservation yet.
    BehindNat,
    /// Reachable through a relay.
    Relayed,
}

/// One connected peer, for `starling status`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub peer: String,
    pub addr: String,
    pub path: Path,
}

/// A snapshot of the network layer, for `starling status`.
#[derive(Debug, Clone, Serialize)]
pub struct NetStatus {
    pub peer_id: String,
    pub reachability: Reachability,
    pub dht_mode: &'static str,
    pub listen_addrs: Vec<String>,
    pub external_addrs: Vec<String>,
    pub advertised_addrs: Vec<String>,
    pub peers: Vec<PeerInfo>,
    pub dht_routing_peers: usize,
    pub dht_size_estimate: u64,
    pub banned_peers: usize,
    pub broadcast: bool,
    /// Home-set lookups in the DHT since the node started.
    pub home_set_lookups: u64,
}

/// The handle to the swarm actor.
#[derive(Debug, Clone)]
pub struct Network {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) peer_id: PeerId,
    pub(crate) advertised: watch::Receiver<Vec<Multiaddr>>,
    pub(crate) routing: watch::Receiver<u64>,
    pub(crate) online: watch::Receiver<u64>,
    pub(crate) lost: broadcast::Sender<PeerId>,
}

/// What the actor hands to the node's request service.
#[derive(Debug)]
pub enum Inbound {
    /// A peer's request; answer it with [`Network::respond`].
    Request {
        peer: PeerId,
        request: Request,
        channel: ResponseChannel<Response>,
    },
    /// A broadcast message; judge it with [`Network::gossip_verdict`].
    Gossip {
        source: PeerId,
        message: libp2p::gossipsub::MessageId,
        data: Vec<u8>,
    },
}

impl Network {
    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses other nodes should use for this one; changes as reachability does.
    pub fn advertised(&self) -> watch::Receiver<Vec<Multiaddr>> {
        self.advertised.clone()
    }

    /// Bumped whenever the DHT routing table gains a peer or the DHT mode changes: a cue
    /// to re-check home-set roles.
    pub fn routing_changes(&self) -> watch::Receiver<u64> {
        self.routing.clone()
    }

    /// Bumped each time the node goes from no connection at all to one: at start and
    /// after every loss of connectivity. Catch-up runs again on each bump.
    pub fn reconnects(&self) -> watch::Receiver<u64> {
        self.online.clone()
    }

    /// Peers as their last connection to this node closes: a serving node that went away.
    pub fn disconnects(&self) -> broadcast::Receiver<PeerId> {
        self.lost.subscribe()
    }

    /// Sends `request` to `peer` (dialling `addrs` if not connected) and waits for the
    /// answer.
    pub async fn request(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: Request,
    ) -> Result<Delivered, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request {
            peer,
            addrs,
            request,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Answers an inbound request.
    pub async fn respond(&self, channel: ResponseChannel<Response>, response: Response) {
        let _ = self.send(Command::Respond { channel, response }).await;
    }

    /// Looks up `author`'s home record in the DHT; `None` if no valid one was found.
    pub async fn resolve(&self, author: PublicKey) -> Result<Option<HomeRecord>, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Resolve { author, reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// `author`'s home set, looked up in the DHT (a cached answer up to the configured age
    /// unless `fresh`).
    pub async fn home_set(&self, author: PublicKey, fresh: bool) -> Result<HomeSet, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::HomeSet {
            author,
            fresh,
            reply,
        })
        .await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// `author`'s home set as this node's routing table sees it, and this node's rank in
    /// it; no network traffic.
    pub async fn local_home(&self, author: PublicKey) -> Result<LocalView, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::LocalHome { author, reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Drops cached home sets naming `peer` (it failed or refused as a member).
    pub async fn forget_member(&self, peer: PeerId) {
        let _ = self.send(Command::ForgetMember { peer }).await;
    }

    /// Stores this node's (owner-signed) home record in the DHT.
    /// Fails when no other DHT node took it (e.g. no peers yet).
    pub async fn publish_home(&self, record: HomeRecord) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::PublishHome { record, reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// Tells gossipsub whether a broadcast message was valid (forwarded) or not (dropped,
    /// and its sender penalised).
    pub async fn gossip_verdict(
        &self,
        message: libp2p::gossipsub::MessageId,
        source: PeerId,
        accept: bool,
    ) {
        let _ = self
            .send(Command::GossipVerdict {
                message,
                source,
                accept,
            })
            .await;
    }

    /// Reports a protocol violation by `peer`; repeated ones get it disconnected and
    /// blocked.
    pub async fn strike(&self, peer: PeerId, reason: impl Into<String>) {
        let reason = reason.into();
        let _ = self.send(Command::Strike { peer, reason }).await;
    }

    /// Publishes an event's JSON on the broadcast topic (no-op when broadcast is off).
    pub async fn broadcast(&self, json: String) -> Result<(), NetError> {
        self.send(Command::Broadcast { json }).await
    }

    /// Keeps (or stops keeping) the connections to `peer` open for `reason`.
    pub async fn keep_alive(&self, peer: PeerId, reason: crate::keep_alive::Reason, on: bool) {
        let _ = self.send(Command::KeepAlive { peer, reason, on }).await;
    }

    /// A snapshot of peers, addresses and reachability.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), NetError> {
        self.tx.send(command).await.map_err(|_| NetError::Stopped)
    }
}

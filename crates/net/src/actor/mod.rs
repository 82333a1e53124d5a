//! The swarm actor: the one task that owns and drives the libp2p [`Swarm`].
//!
//! It takes [`Command`]s from [`Network`] handles, turns swarm events into answers for
//! pending requests and DHT lookups, hands inbound requests and broadcast messages to the
//! node's request service (a bounded channel: when the service is saturated, the peer is
//! told so instead of queueing without limit), tracks connections and reachability, and
//! enforces strikes against hostile peers. Swarm events are handled in `events`; the
//! reachability and address bookkeeping lives in `addrs`.

mod addrs;
mod events;
mod homes;
mod resolve;
mod status;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::request_response::OutboundRequestId;
use libp2p::swarm::ConnectionId;
use libp2p::{gossipsub, kad, Multiaddr, PeerId, Swarm};
use starling_proto::PublicKey;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::behaviour::{build_swarm, Behaviour, BROADCAST_TOPIC};
use crate::config::NetSettings;
use crate::handle::{Command, Delivered, Inbound, Network, Path};
use crate::home::dht_key;
use crate::strikes::{Strikes, Verdict};
use crate::wire::Response;
use crate::NetError;

use self::addrs::Addresses;
use self::homes::HomeLookups;
pub use self::homes::LocalView;
use self::resolve::Resolves;

/// How many commands and inbound items may wait.
const CHANNEL: usize = 1024;
/// Disconnections buffered for a slow listener (it then re-checks everything).
const LOST_CAPACITY: usize = 256;
/// How often timers (resolve deadlines, bans, relay choice) are checked.
const TICK: Duration = Duration::from_millis(250);

/// An open connection.
#[derive(Debug, Clone)]
struct Conn {
    peer: PeerId,
    addr: Multiaddr,
    path: Path,
}

/// State owned by the actor task.
pub(crate) struct Actor {
    swarm: Swarm<Behaviour>,
    settings: NetSettings,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Delivered, NetError>>>,
    puts: HashMap<kad::QueryId, oneshot::Sender<Result<(), NetError>>>,
    resolves: Resolves,
    homes: HomeLookups,
    /// Bumped on routing-table changes (see [`Network::routing_changes`]).
    routing: watch::Sender<u64>,
    /// Bumped when the node goes from no connection to one (see [`Network::reconnects`]).
    online: watch::Sender<u64>,
    /// Peers whose last connection closed (see [`Network::disconnects`]).
    lost: broadcast::Sender<PeerId>,
    conns: HashMap<ConnectionId, Conn>,
    strikes: Strikes,
    addrs: Addresses,
    shutdown: CancellationToken,
    /// The listeners opened at start, closed explicitly at the end (the memory transport
    /// frees its port only then, not when dropped).
    listeners: Vec<libp2p::core::transport::ListenerId>,
}

/// Builds the swarm, starts listening and dialling the bootstrap nodes, and spawns the
/// actor. Returns the handle and the receiver of inbound requests for the service.
/// `owner` is the user this node serves (none for a bootstrap node): the actor knows from
/// the start that the owner's node is itself, so no home set of the owner ever lists it.
pub fn spawn(
    key: libp2p::identity::Keypair,
    owner: Option<PublicKey>,
    settings: NetSettings,
    shutdown: CancellationToken,
) -> Result<
    (
        Network,
        mpsc::Receiver<Inbound>,
        tokio::task::JoinHandle<()>,
    ),
    NetError,
> {
    let mut swarm = build_swarm(key, &settings)?;
    let mut listeners = Vec::with_capacity(settings.listen.len());
    for addr in &settings.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen(addr.to_string(), format!("{e:?}")))?;
        listeners.push(id);
    }
    for addr in &settings.bootstrap {
        info!(%addr, "dialling bootstrap node");
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "cannot dial bootstrap node");
        }
    }
    if let Some(gossip) = swarm.behaviour_mut().gossip.as_mut() {
        gossip
            .subscribe(&gossipsub::IdentTopic::new(BROADCAST_TOPIC))
            .map_err(|e| NetError::Transport(e.to_string()))?;
    }
    let (tx, commands) = mpsc::channel(CHANNEL);
    let (inbound_tx, inbound_rx) = mpsc::channel(CHANNEL);
    let (advertised_tx, advertised) = watch::channel(Vec::new());
    let (routing_tx, routing) = watch::channel(0);
    let (online_tx, online) = watch::channel(0);
    let (lost, _) = broadcast::channel(LOST_CAPACITY);
    let network = Network {
        tx,
        peer_id: *swarm.local_peer_id(),
        advertised,
        routing,
        online,
        lost: lost.clone(),
    };
    let mut actor = Actor {
        addrs: Addresses::new(&settings, advertised_tx),
        swarm,
        settings,
        commands,
        inbound: inbound_tx,
        requests: HashMap::new(),
        puts: HashMap::new(),
        resolves: Resolves::default(),
        homes: HomeLookups::default(),
        routing: routing_tx,
        online: online_tx,
        lost,
        conns: HashMap::new(),
        strikes: Strikes::default(),
        shutdown,
        listeners,
    };
    if let Some(owner) = owner {
        let me = *actor.swarm.local_peer_id();
        actor.learn_node(owner, me);
    }
    let task = tokio::spawn(actor.run());
    Ok((network, inbound_rx, task))
}

impl Actor {
    async fn run(mut self) {
        use futures_util::StreamExt;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
        for id in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(id);
        }
        debug!("swarm actor stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                addrs,
                request,
                reply,
            } => {
                if peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(NetError::SelfRequest));
                    return;
                }
                let id = self.swarm.behaviour_mut().rr.send_request_with_addresses(
                    &peer,
                    request.into(),
                    addrs,
                );
                self.requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                // The peer may have gone; nothing to do then.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_response(channel, response);
            }
            Command::Resolve { author, reply } => {
                let key = kad::RecordKey::new(&dht_key(&author));
                let id = self.swarm.behaviour_mut().kad.get_record(key);
                self.resolves.start(id, author, reply);
            }
            Command::HomeSet {
                author,
                fresh,
                reply,
            } => self.home_set(author, fresh, reply),
            Command::LocalHome { author, reply } => {
                let _ = reply.send(self.local_home(&author));
            }
            Command::ForgetMember { peer } => self.forget_member(&peer),
            Command::PublishHome { record, reply } => self.publish_home(record, reply),
            Command::Strike { peer, reason } => self.strike(peer, &reason),
            Command::Broadcast { json } => self.broadcast(json),
            Command::GossipVerdict {
                message,
                source,
                accept,
            } => {
                if let Some(gossip) = self.swarm.behaviour_mut().gossip.as_mut() {
                    let verdict = if accept {
                        gossipsub::MessageAcceptance::Accept
                    } else {
                        gossipsub::MessageAcceptance::Reject
                    };
                    gossip.report_message_validation_result(&message, &source, verdict);
                }
            }
            Command::KeepAlive { peer, reason, on } => {
                self.swarm.behaviour_mut().keep_alive.set(peer, reason, on)
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn publish_home(
        &mut self,
        record: crate::home::HomeRecord,
        reply: oneshot::Sender<Result<(), NetError>>,
    ) {
        self.learn_node(record.author, *self.swarm.local_peer_id());
        let mut kad_record = kad::Record::new(
            kad::RecordKey::new(&dht_key(&record.author)),
            record.json.into_bytes(),
        );
        kad_record.publisher = Some(*self.swarm.local_peer_id());
        match self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(kad_record, kad::Quorum::One)
        {
            Ok(id) => {
                self.puts.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dht(format!("{e:?}"))));
            }
        }
    }

    fn broadcast(&mut self, json: String) {
        let Some(gossip) = self.swarm.behaviour_mut().gossip.as_mut() else {
            return;
        };
        let topic = gossipsub::IdentTopic::new(BROADCAST_TOPIC);
        match gossip.publish(topic, json.into_bytes()) {
            Ok(_) => {}
            // Alone in the topic is normal for the first node.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!("broadcast: no peers on the topic yet")
            }
            Err(e) => warn!(error = %e, "broadcast failed"),
        }
    }

    /// Counts a violation; on the last straw the peer is disconnected and blocked.
    fn strike(&mut self, peer: PeerId, reason: &str) {
        match self.strikes.strike(peer, Instant::now()) {
            Verdict::Tolerate => warn!(%peer, reason, "peer misbehaved"),
            Verdict::Ban(_) => {
                warn!(%peer, reason, "peer misbehaved repeatedly: disconnecting and blocking it for an hour");
                self.swarm.behaviour_mut().blocked.block_peer(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for peer in self.strikes.expired_bans(now) {
            info!(%peer, "ban over");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        for id in self.resolves.due(now) {
            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                query.finish();
            }
        }
        self.maybe_listen_via_relay(now);
    }

    fn reply_request(&mut self, id: OutboundRequestId, result: Result<Delivered, NetError>) {
        if let Some(reply) = self.requests.remove(&id) {
            let _ = reply.send(result);
        }
    }

    fn path_of(&self, connection: ConnectionId) -> Path {
        self.conns
            .get(&connection)
            .map(|c| c.path)
            .unwrap_or(Path::Direct)
    }

    fn deliver(&mut self, id: OutboundRequestId, connection: ConnectionId, response: Response) {
        let path = self.path_of(connection);
        self.reply_request(id, Ok(Delivered { response, path }));
    }
}

//! Swarm events, one handler per protocol: connections and addresses, identify (feeds the
//! DHT and the relay candidates), Kademlia (lookups, puts, validated inbound records),
//! request-response (answers, failures, inbound requests), AutoNAT, relay, DCUtR and
//! gossipsub.

use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, InboundFailure, Message, OutboundFailure};
use libp2p::swarm::SwarmEvent;
use libp2p::{autonat, dcutr, gossipsub, identify, kad, relay, PeerId};
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, info, trace, warn};

use super::addrs::{is_circuit, is_unspecified};
use super::resolve::Found;
use super::{Actor, Conn};
use crate::behaviour::{BehaviourEvent, BOOTSTRAP_AGENT, KAD_PROTOCOL};
use crate::handle::{Inbound, Path};
use crate::home::{dht_key, HomeRecord};
use crate::wire::{Inbound as WireInbound, Request, Response};
use crate::NetError;

const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

type RrEvent = request_response::Event<WireInbound, Response>;

impl Actor {
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                let addr = endpoint.get_remote_address().clone();
                // An inbound circuit's remote address is only `/p2p/SRC`; the endpoint
                // knows it is relayed from its local (listening) address.
                let path = if endpoint.is_relayed() {
                    Path::Relayed
                } else {
                    Path::Direct
                };
                debug!(peer = %peer_id, %addr, ?path, "connected");
                if self.conns.is_empty() {
                    self.online.send_modify(|n| *n += 1);
                }
                self.conns.insert(
                    connection_id,
                    Conn {
                        peer: peer_id,
                        addr,
                        path,
                    },
                );
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.conns.remove(&connection_id);
                if num_established == 0 {
                    debug!(peer = %peer_id, "disconnected");
                    // Nobody listening is fine.
                    let _ = self.lost.send(peer_id);
                    self.addrs.relay_candidates.remove(&peer_id);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                if self.settings.public && !is_circuit(&address) && !is_unspecified(&address) {
                    self.swarm.add_external_address(address.clone());
                }
                self.addrs.listen.push(address);
                self.on_reachability_change();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.addrs.listen.retain(|a| a != &address);
                self.on_reachability_change();
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                if let Err(e) = reason {
                    warn!(error = %e, "a listener closed");
                }
                self.addrs.listen.retain(|a| !addresses.contains(a));
                self.on_reachability_change();
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                info!(%address, "external address confirmed");
                if !self.addrs.external.contains(&address) {
                    self.addrs.external.push(address);
                }
                self.on_reachability_change();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                info!(%address, "external address expired");
                self.addrs.external.retain(|a| a != &address);
                self.on_reachability_change();
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, error = %error, "dial failed");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identified(peer_id, info)
            }
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Rr(event) => self.on_rr(event),
            BehaviourEvent::AutonatClient(autonat::v2::client::Event {
                tested_addr,
                server,
                result,
                ..
            }) => match result {
                Ok(()) => info!(addr = %tested_addr, %server, "reachable at this address"),
                Err(e) => {
                    debug!(addr = %tested_addr, %server, error = %e, "not reachable at this address")
                }
            },
            BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            }) => info!(relay = %relay_peer_id, "relay circuit reserved"),
            BehaviourEvent::RelayServer(relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed: false,
            }) => info!(peer = %src_peer_id, "relaying for a NATed peer"),
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => info!(peer = %remote_peer_id, "hole punched: direct connection"),
                Err(e) => {
                    info!(peer = %remote_peer_id, error = %e, "hole punching failed; staying on the relay")
                }
            },
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let item = Inbound::Gossip {
                    source: propagation_source,
                    message: message_id,
                    data: message.data,
                };
                if self.inbound.try_send(item).is_err() {
                    debug!("request service busy: broadcast message dropped");
                }
            }
            _ => {}
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if info.agent_version.starts_with(BOOTSTRAP_AGENT) {
            self.homes.bootstraps.insert(peer);
        }
        let kad_server = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
        let relay = info.protocols.iter().any(|p| p.as_ref() == HOP_PROTOCOL);
        if kad_server {
            for addr in info.listen_addrs.iter().filter(|a| !is_circuit(a)) {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
        }
        if kad_server && relay {
            let direct = self
                .conns
                .values()
                .find(|c| c.peer == peer && c.path == Path::Direct)
                .map(|c| c.addr.clone());
            if let Some(addr) = direct {
                let addr = addr
                    .iter()
                    .filter(|p| !matches!(p, Protocol::P2p(_)))
                    .collect();
                self.addrs.relay_candidates.insert(peer, addr);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                    self.learn_from_record(&found.record.value);
                    if self.is_home_record_query(&id) {
                        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                            query.finish();
                        }
                        return;
                    }
                    if let Found::Invalid(reason) = self.resolves.found(id, &found.record.value) {
                        if let Some(peer) = found.peer {
                            self.strike(peer, &format!("served a bad home record: {reason}"));
                        }
                    }
                    if step.last {
                        self.resolves.finish(id);
                    }
                }
                kad::QueryResult::GetRecord(_) if self.is_home_record_query(&id) => {
                    self.home_record_done(id)
                }
                kad::QueryResult::GetRecord(_) => self.resolves.finish(id),
                kad::QueryResult::GetClosestPeers(result) => {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    self.home_set_found(id, peers);
                }
                kad::QueryResult::PutRecord(result) => {
                    if let Some(reply) = self.puts.remove(&id) {
                        let _ = reply
                            .send(result.map(|_| ()).map_err(|e| NetError::Dht(e.to_string())));
                    }
                }
                _ => {}
            },
            kad::Event::RoutingUpdated {
                is_new_peer: true, ..
            } => self.routing.send_modify(|n| *n += 1),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::InboundRequest { request } => {
                let kind = match request {
                    kad::InboundRequest::FindNode { .. } => "find_node",
                    kad::InboundRequest::GetRecord { .. } => "get_record",
                    kad::InboundRequest::PutRecord { .. } => "put_record",
                    _ => "provider",
                };
                trace!(kind, "kad request served");
            }
            _ => {}
        }
    }

    /// Notes the user's own node from a home record found in the DHT, if it is valid.
    fn learn_from_record(&mut self, value: &[u8]) {
        if let Some(home) = std::str::from_utf8(value)
            .ok()
            .and_then(|json| HomeRecord::from_json(json, None).ok())
        {
            self.learn_node(home.author, home.peer);
        }
    }

    /// A peer asks us to store a record: only valid home records, under their own key,
    /// and never older than the one we hold.
    fn on_inbound_record(&mut self, source: PeerId, record: kad::Record) {
        use libp2p::kad::store::RecordStore;
        let checked = std::str::from_utf8(&record.value)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|json| HomeRecord::from_json(json, None).map_err(|e| e.to_string()))
            .and_then(|home| {
                if record.key.as_ref() == dht_key(&home.author).as_slice() {
                    Ok(home)
                } else {
                    Err("stored under another key".into())
                }
            });
        let home = match checked {
            Ok(home) => home,
            Err(reason) => {
                self.strike(source, &format!("offered a bad DHT record: {reason}"));
                return;
            }
        };
        self.learn_node(home.author, home.peer);
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let newer_held = store.get(&record.key).is_some_and(|held| {
            std::str::from_utf8(&held.value)
                .ok()
                .and_then(|j| HomeRecord::from_json(j, None).ok())
                .is_some_and(|h| h.created_at > home.created_at)
        });
        if !newer_held {
            if let Err(e) = store.put(record) {
                debug!(error = ?e, "cannot keep a home record");
            }
        }
    }

    fn on_rr(&mut self, event: RrEvent) {
        match event {
            RrEvent::Message {
                peer,
                connection_id,
                message,
            } => match message {
                Message::Response {
                    request_id,
                    response,
                } => self.deliver(request_id, connection_id, response),
                Message::Request {
                    request: WireInbound::Request(request),
                    channel,
                    ..
                } => self.on_inbound_request(peer, request, channel),
                Message::Request {
                    request: WireInbound::Malformed(reason),
                    channel,
                    ..
                } => {
                    self.strike(peer, &reason);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .rr
                        .send_response(channel, Response::refused(reason));
                }
            },
            RrEvent::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let error = match error {
                    OutboundFailure::DialFailure => NetError::Unreachable(peer.to_string()),
                    OutboundFailure::Timeout => NetError::Timeout,
                    other => NetError::Request(other.to_string()),
                };
                self.reply_request(request_id, Err(error));
            }
            RrEvent::InboundFailure { peer, error, .. } => match error {
                // A message that does not decode or exceeds the size bound.
                InboundFailure::Io(e) => self.strike(peer, &format!("bad message: {e}")),
                other => debug!(%peer, error = %other, "inbound request failed"),
            },
            RrEvent::ResponseSent { .. } => {}
        }
    }

    fn on_inbound_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    ) {
        let item = Inbound::Request {
            peer,
            request,
            channel,
        };
        match self.inbound.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(Inbound::Request { channel, .. })) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_response(channel, Response::refused("busy: try again later"));
            }
            Err(_) => {}
        }
    }
}

//! Keeping the right connections open. Connections close after `idle_timeout` without
//! traffic (DHT lookups touch many peers briefly; holding all of those would cost every
//! node a connection to most of the network), except the ones this behaviour marks: the
//! connections to the nodes of followed authors (follower side) and to subscribed
//! followers (author side), over which pushes travel without a new handshake each time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// Why a connection is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// We hold a subscription at this peer.
    Following,
    /// This peer holds a subscription here.
    Follower,
}

/// Marks peers whose connections stay open.
#[derive(Default)]
pub struct Behaviour {
    keep: HashMap<PeerId, HashSet<Reason>>,
    pending: VecDeque<(PeerId, bool)>,
}

impl Behaviour {
    /// Adds or removes `reason` for keeping `peer`'s connection.
    pub fn set(&mut self, peer: PeerId, reason: Reason, on: bool) {
        let before = self.keeps(&peer);
        let reasons = self.keep.entry(peer).or_default();
        if on {
            reasons.insert(reason);
        } else {
            reasons.remove(&reason);
            if reasons.is_empty() {
                self.keep.remove(&peer);
            }
        }
        let after = self.keeps(&peer);
        if before != after {
            self.pending.push_back((peer, after));
        }
    }

    fn keeps(&self, peer: &PeerId) -> bool {
        self.keep.contains_key(peer)
    }

    /// Peers kept open now.
    pub fn kept(&self) -> usize {
        self.keep.len()
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler {
            keep: self.keeps(&peer),
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler {
            keep: self.keeps(&peer),
        })
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            // Every connection to the peer learns it; unknown peers are ignored by the swarm.
            Some((peer_id, keep)) => Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::Any,
                event: keep,
            }),
            None => Poll::Pending,
        }
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}
}

/// Holds a connection open while told to; speaks no protocol.
#[derive(Debug, Clone)]
pub struct Handler {
    keep: bool,
}

impl libp2p::swarm::ConnectionHandler for Handler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep
    }

    fn on_behaviour_event(&mut self, keep: bool) {
        self.keep = keep;
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_reason_keeps_and_changes_are_announced_once() {
        let mut b = Behaviour::default();
        let p = PeerId::random();
        b.set(p, Reason::Following, true);
        b.set(p, Reason::Follower, true);
        b.set(p, Reason::Following, false);
        assert_eq!(b.kept(), 1);
        b.set(p, Reason::Follower, false);
        assert_eq!(b.kept(), 0);
        assert_eq!(b.pending, VecDeque::from([(p, true), (p, false)]));
    }
}

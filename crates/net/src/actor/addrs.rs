//! Reachability and addresses: which addresses the node listens on, which are confirmed
//! reachable from outside (AutoNAT v2, or `--public`), which relay circuits it holds, and
//! from these the addresses it advertises in its home record. A node that finds no
//! confirmed address within `relay_after` reserves a circuit at a reachable peer that
//! offers the relay service, and the DHT runs in server mode only when the node is
//! reachable.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::{kad, Multiaddr, PeerId};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Actor;
use crate::config::NetSettings;
use crate::handle::Reachability;

/// Address bookkeeping of one node.
pub(super) struct Addresses {
    public: bool,
    started: Instant,
    relay_after: std::time::Duration,
    pub listen: Vec<Multiaddr>,
    pub external: Vec<Multiaddr>,
    /// Peers offering the relay service and reachable directly, with their address.
    pub relay_candidates: HashMap<PeerId, Multiaddr>,
    /// The relay we asked for a circuit and when, while we wait or hold it.
    relay: Option<(PeerId, Instant)>,
    advertised: watch::Sender<Vec<Multiaddr>>,
}

pub(super) fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().next().is_some_and(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

pub(super) fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

impl Addresses {
    pub fn new(settings: &NetSettings, advertised: watch::Sender<Vec<Multiaddr>>) -> Self {
        Self {
            public: settings.public,
            started: Instant::now(),
            relay_after: settings.relay_after,
            listen: Vec::new(),
            external: Vec::new(),
            relay_candidates: HashMap::new(),
            relay: None,
            advertised,
        }
    }

    pub fn reachability(&self) -> Reachability {
        if self.public || self.external.iter().any(|a| !is_circuit(a)) {
            Reachability::Public
        } else if self.listen.iter().any(is_circuit) {
            Reachability::Relayed
        } else if self.started.elapsed() >= self.relay_after {
            Reachability::BehindNat
        } else {
            Reachability::Unknown
        }
    }

    /// The addresses to publish: confirmed external ones and relay circuits; before any
    /// is known, the concrete listen addresses (enough on a LAN or loopback).
    fn compute_advertised(&self) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = self
            .external
            .iter()
            .chain(self.listen.iter().filter(|a| is_circuit(a)))
            .cloned()
            .collect();
        if out.is_empty() || self.public {
            out.extend(
                self.listen
                    .iter()
                    .filter(|a| !is_unspecified(a) && !is_circuit(a))
                    .cloned(),
            );
        }
        // Loopback addresses only help on this machine; keep them only when there is
        // nothing else (tests, a single-machine network).
        if out.iter().any(|a| !is_loopback(a)) {
            out.retain(|a| !is_loopback(a));
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn advertised_now(&self) -> Vec<Multiaddr> {
        self.compute_advertised()
    }

    /// Recomputes the advertised set; watchers see it only when it changed.
    pub fn refresh(&self) {
        let new = self.compute_advertised();
        self.advertised.send_if_modified(|old| {
            if *old == new {
                false
            } else {
                *old = new;
                true
            }
        });
    }
}

impl Actor {
    pub(super) fn on_reachability_change(&mut self) {
        let mode = match self.addrs.reachability() {
            Reachability::Public => kad::Mode::Server,
            _ => kad::Mode::Client,
        };
        if self.swarm.behaviour().kad.mode() != mode {
            info!(?mode, "DHT mode changed");
            self.swarm.behaviour_mut().kad.set_mode(Some(mode));
            self.routing.send_modify(|n| *n += 1);
        }
        self.addrs.refresh();
    }

    /// Reserves a relay circuit when the node has been unreachable for long enough.
    pub(super) fn maybe_listen_via_relay(&mut self, now: Instant) {
        let a = &self.addrs;
        if a.public
            || a.reachability() == Reachability::Public
            || now.duration_since(a.started) < a.relay_after
        {
            return;
        }
        if let Some((relay, asked)) = a.relay {
            let holding = a.listen.iter().any(is_circuit);
            let waiting = now.duration_since(asked) < std::time::Duration::from_secs(30);
            if holding || (waiting && a.relay_candidates.contains_key(&relay)) {
                return;
            }
        }
        let Some((relay, addr)) = a
            .relay_candidates
            .iter()
            .min_by_key(|(p, _)| **p)
            .map(|(p, a)| (*p, a.clone()))
        else {
            return;
        };
        let circuit = addr.with(Protocol::P2p(relay)).with(Protocol::P2pCircuit);
        info!(%relay, %circuit, "not reachable directly: reserving a relay circuit");
        if let Err(e) = self.swarm.listen_on(circuit) {
            warn!(%relay, error = %e, "cannot listen through the relay");
        }
        self.addrs.relay = Some((relay, now));
    }
}

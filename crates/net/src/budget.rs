//! Per-peer budgets for what peers ask of this node, without I/O: a token bucket per peer
//! (a request costs 1, plus a little per event or author it carries) and a cap on the
//! requests of one peer being served at once, so one flooding peer cannot take the
//! request service's places from honest ones. Requests over budget are refused with a
//! `rate-limited:` reason at once, unread; a peer refused [`OVERDRAFTS_PER_STRIKE`] times
//! within [`OVERDRAFT_WINDOW`] earns a strike (three strikes get it banned, see
//! [`crate::strikes`]). The request service owns one of these.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use starling_core::{Buckets, Rate};

use crate::wire::RequestBody;

/// Refusals that earn a peer one strike...
pub const OVERDRAFTS_PER_STRIKE: u32 = 100;
/// ...within this long.
pub const OVERDRAFT_WINDOW: Duration = Duration::from_secs(60);
/// Peers with a bucket at once.
const MAX_PEERS: usize = 4096;

/// What to do with one inbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Serve,
    /// Refuse it with this reason.
    Refuse(&'static str),
    /// Refuse it and strike the peer.
    Strike(&'static str),
}

const RATE_LIMITED: &str = "rate-limited: too many requests from this peer";
const TOO_MANY_IN_FLIGHT: &str = "rate-limited: too many requests from this peer at once";

/// The budgets of all peers.
#[derive(Debug)]
pub struct PeerBudgets {
    buckets: Buckets<PeerId>,
    max_in_flight: usize,
    in_flight: HashMap<PeerId, usize>,
    overdrafts: HashMap<PeerId, (u32, Instant)>,
}

/// What a request costs: 1, plus 1 per 10 events pushed or 50 authors subscribed to.
pub fn cost(body: &RequestBody) -> f64 {
    let extra = match body {
        RequestBody::Push { events } => events.len() / 10,
        RequestBody::Subscribe { authors, .. } | RequestBody::Unsubscribe { authors } => {
            authors.len() / 50
        }
        _ => 0,
    };
    1.0 + extra as f64
}

impl PeerBudgets {
    pub fn new(rate: Rate, max_in_flight: usize) -> Self {
        Self {
            buckets: Buckets::new(rate, MAX_PEERS),
            max_in_flight: max_in_flight.max(1),
            in_flight: HashMap::new(),
            overdrafts: HashMap::new(),
        }
    }

    /// Decides on a request of `peer` costing `cost`; a served one counts as in flight
    /// until [`PeerBudgets::finished`].
    pub fn admit(&mut self, peer: PeerId, cost: f64, now: Instant) -> Admission {
        let busy = self.in_flight.get(&peer).copied().unwrap_or(0) >= self.max_in_flight;
        let reason = if busy {
            TOO_MANY_IN_FLIGHT
        } else if !self.buckets.take(&peer, cost, now) {
            RATE_LIMITED
        } else {
            *self.in_flight.entry(peer).or_insert(0) += 1;
            return Admission::Serve;
        };
        if self.overdraft(peer, now) {
            Admission::Strike(reason)
        } else {
            Admission::Refuse(reason)
        }
    }

    /// A served request of `peer` is answered.
    pub fn finished(&mut self, peer: PeerId) {
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&peer);
            }
        }
    }

    /// Counts a refusal; true when it completes a strike's worth.
    fn overdraft(&mut self, peer: PeerId, now: Instant) -> bool {
        if self.overdrafts.len() >= MAX_PEERS {
            self.overdrafts
                .retain(|_, (_, since)| now.duration_since(*since) <= OVERDRAFT_WINDOW);
        }
        let entry = self.overdrafts.entry(peer).or_insert((0, now));
        if now.duration_since(entry.1) > OVERDRAFT_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 >= OVERDRAFTS_PER_STRIKE {
            self.overdrafts.remove(&peer);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_peer_is_refused_then_struck_and_others_are_served() {
        let mut b = PeerBudgets::new(Rate::new(10, 20), 100);
        let flooder = PeerId::random();
        let honest = PeerId::random();
        let t0 = Instant::now();
        let verdicts: Vec<Admission> = (0..20 + OVERDRAFTS_PER_STRIKE)
            .map(|_| b.admit(flooder, 1.0, t0))
            .collect();
        assert!(verdicts[..20].iter().all(|v| *v == Admission::Serve));
        assert!(verdicts[20..verdicts.len() - 1]
            .iter()
            .all(|v| *v == Admission::Refuse(RATE_LIMITED)));
        assert_eq!(verdicts.last(), Some(&Admission::Strike(RATE_LIMITED)));
        assert_eq!(b.admit(honest, 1.0, t0), Admission::Serve);
    }

    #[test]
    fn in_flight_requests_are_capped_per_peer() {
        let mut b = PeerBudgets::new(Rate::UNLIMITED, 2);
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert_eq!(b.admit(peer, 1.0, t0), Admission::Serve);
        assert_eq!(b.admit(peer, 1.0, t0), Admission::Serve);
        assert_eq!(
            b.admit(peer, 1.0, t0),
            Admission::Refuse(TOO_MANY_IN_FLIGHT)
        );
        b.finished(peer);
        assert_eq!(b.admit(peer, 1.0, t0), Admission::Serve);
    }

    #[test]
    fn big_pushes_cost_more() {
        let push = |n: usize| RequestBody::Push {
            events: vec![String::new(); n],
        };
        assert_eq!(cost(&push(1)), 1.0);
        assert_eq!(cost(&push(500)), 51.0);
    }
}

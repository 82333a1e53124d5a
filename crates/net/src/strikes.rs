//! Accounting of misbehaving peers, without I/O: each malformed, oversized or badly signed
//! message is a strike; a peer that collects [`Strikes::LIMIT`] strikes within
//! [`Strikes::WINDOW`] is to be disconnected and blocked for [`Strikes::BAN`]. The swarm
//! actor owns one of these and acts on its answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// What to do after a strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep talking to the peer.
    Tolerate,
    /// Disconnect and block it until the given time.
    Ban(Instant),
}

/// Strike counts per peer and the current bans.
#[derive(Debug, Default)]
pub struct Strikes {
    counts: HashMap<PeerId, (u32, Instant)>,
    bans: HashMap<PeerId, Instant>,
}

impl Strikes {
    pub const LIMIT: u32 = 3;
    pub const WINDOW: Duration = Duration::from_secs(10 * 60);
    pub const BAN: Duration = Duration::from_secs(60 * 60);

    /// Records one strike against `peer` at `now`.
    pub fn strike(&mut self, peer: PeerId, now: Instant) -> Verdict {
        let entry = self.counts.entry(peer).or_insert((0, now));
        if now.duration_since(entry.1) > Self::WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 >= Self::LIMIT {
            self.counts.remove(&peer);
            let until = now + Self::BAN;
            self.bans.insert(peer, until);
            Verdict::Ban(until)
        } else {
            Verdict::Tolerate
        }
    }

    /// Peers whose ban is over at `now`; they are forgotten.
    pub fn expired_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let over: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &over {
            self.bans.remove(peer);
        }
        // Old strike counts expire too, so the map stays small.
        self.counts
            .retain(|_, (_, since)| now.duration_since(*since) <= Self::WINDOW);
        over
    }

    /// How many peers are banned now.
    pub fn banned(&self) -> usize {
        self.bans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_strike_bans_and_ban_expires() {
        let mut s = Strikes::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        assert_eq!(s.strike(peer, t0), Verdict::Tolerate);
        assert_eq!(s.strike(peer, t0), Verdict::Tolerate);
        assert_eq!(s.strike(peer, t0), Verdict::Ban(t0 + Strikes::BAN));
        assert_eq!(s.banned(), 1);
        assert!(s.expired_bans(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(s.expired_bans(t0 + Strikes::BAN), vec![peer]);
        assert_eq!(s.banned(), 0);
    }

    #[test]
    fn strikes_far_apart_are_forgiven() {
        let mut s = Strikes::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        s.strike(peer, t0);
        s.strike(peer, t0);
        let later = t0 + Strikes::WINDOW + Duration::from_secs(1);
        assert_eq!(s.strike(peer, later), Verdict::Tolerate);
    }
}

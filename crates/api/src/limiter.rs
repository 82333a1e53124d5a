//! Rate limits and caps for client connections, so that a flooding client cannot crowd
//! out honest ones: token buckets per connection, per IP address and per public key for
//! EVENTs and for REQ-like messages (REQ, COUNT, NEG-OPEN; also `POST /publish` and
//! `POST /req`), caps on connections (in all and per IP), and a bound on the bytes of the
//! EVENTs one connection has in flight.
//!
//! A refused EVENT (invalid, badly signed, not allowed here) costs
//! [`RateConfig::refused_event_cost`] tokens instead of one, so junk runs dry much sooner
//! than honest writes. Loopback clients are the owner's own machine: by default
//! ([`RateConfig::exempt_loopback`]) they skip the buckets (imports, bridges and
//! benchmarks run at full speed) but keep the caps.
//!
//! [`Limiter`] is shared by the whole API (it lives in `ApiState`); each WebSocket gets a
//! [`ConnSlot`] from [`Limiter::admit`], which holds the connection's own buckets and
//! gives its place back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use starling_core::{Bucket, Buckets, Rate};
use starling_proto::PublicKey;

/// Most IP addresses or public keys with a bucket at once.
const MAX_KEYS: usize = 10_000;

/// `[rate]` in `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Clients on loopback skip the token buckets (they still count against the caps).
    pub exempt_loopback: bool,
    /// Most WebSocket connections at once.
    pub max_connections: usize,
    /// Most WebSocket connections from one IP address (not counted for exempt loopback).
    pub max_connections_per_ip: usize,
    /// Most bytes of EVENTs one connection has waiting to be stored.
    pub max_pending_bytes: usize,
    /// EVENTs per connection.
    pub connection_events: Rate,
    /// REQ, COUNT and NEG-OPEN per connection.
    pub connection_reqs: Rate,
    /// EVENTs per IP address, over all its connections and `POST /publish`.
    pub ip_events: Rate,
    /// REQ, COUNT and NEG-OPEN per IP address, and `POST /req`.
    pub ip_reqs: Rate,
    /// EVENTs per author (or per authenticated key).
    pub pubkey_events: Rate,
    /// Tokens a refused EVENT costs (an accepted one costs 1).
    pub refused_event_cost: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            exempt_loopback: true,
            max_connections: 1024,
            max_connections_per_ip: 16,
            max_pending_bytes: 4 * 1024 * 1024,
            connection_events: Rate::new(50, 500),
            connection_reqs: Rate::new(10, 50),
            ip_events: Rate::new(100, 1000),
            ip_reqs: Rate::new(20, 100),
            pubkey_events: Rate::new(50, 500),
            refused_event_cost: 10,
        }
    }
}

/// What a limit said no to, as the machine-readable NIP-01 reason.
pub const RATE_LIMITED: &str = "rate-limited: slow down";

/// The shared part: per-IP and per-key buckets, connection counts.
#[derive(Debug)]
pub struct Limiter {
    config: RateConfig,
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    ip_events: Mutex<Buckets<IpAddr>>,
    ip_reqs: Mutex<Buckets<IpAddr>>,
    pubkey_events: Mutex<Buckets<PublicKey>>,
}

impl Limiter {
    pub fn new(config: RateConfig) -> Arc<Self> {
        Arc::new(Self {
            ip_events: Mutex::new(Buckets::new(config.ip_events, MAX_KEYS)),
            ip_reqs: Mutex::new(Buckets::new(config.ip_reqs, MAX_KEYS)),
            pubkey_events: Mutex::new(Buckets::new(config.pubkey_events, MAX_KEYS)),
            connections: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            config,
        })
    }

    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// Whether a client at `ip` is held to the buckets (`None`: in-process, never).
    fn limits(&self, ip: Option<IpAddr>) -> bool {
        match ip {
            None => false,
            Some(ip) => !(self.config.exempt_loopback && ip.is_loopback()),
        }
    }

    /// A place for a new WebSocket connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<ConnSlot, String> {
        let total = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let mut slot = ConnSlot {
            limiter: self.clone(),
            ip,
            counted_ip: None,
            limited: self.limits(ip),
            events: Bucket::new(&self.config.connection_events, Instant::now()),
            reqs: Bucket::new(&self.config.connection_reqs, Instant::now()),
        };
        if total > self.config.max_connections {
            return Err(format!(
                "too many connections (the limit is {})",
                self.config.max_connections
            ));
        }
        if let Some(ip) = ip.filter(|_| slot.limited) {
            let mut per_ip = self.per_ip.lock().expect("per-ip lock");
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.config.max_connections_per_ip {
                return Err(format!(
                    "too many connections from {ip} (the limit is {})",
                    self.config.max_connections_per_ip
                ));
            }
            *n += 1;
            slot.counted_ip = Some(ip);
        }
        Ok(slot)
    }

    /// One `POST /publish` (of `events` events) from `ip`.
    pub fn http_events(&self, ip: Option<IpAddr>, events: usize) -> Result<(), &'static str> {
        self.ip_take(&self.ip_events, ip, events as f64)
    }

    /// One `POST /req` from `ip`.
    pub fn http_req(&self, ip: Option<IpAddr>) -> Result<(), &'static str> {
        self.ip_take(&self.ip_reqs, ip, 1.0)
    }

    fn ip_take(
        &self,
        buckets: &Mutex<Buckets<IpAddr>>,
        ip: Option<IpAddr>,
        cost: f64,
    ) -> Result<(), &'static str> {
        match ip {
            Some(ip) if self.limits(Some(ip)) => {
                let mut b = buckets.lock().expect("bucket lock");
                if b.take(&ip, cost, Instant::now()) {
                    Ok(())
                } else {
                    Err(RATE_LIMITED)
                }
            }
            _ => Ok(()),
        }
    }
}

/// One WebSocket connection's place and buckets.
#[derive(Debug)]
pub struct ConnSlot {
    limiter: Arc<Limiter>,
    ip: Option<IpAddr>,
    counted_ip: Option<IpAddr>,
    limited: bool,
    events: Bucket,
    reqs: Bucket,
}

impl ConnSlot {
    /// The client's address (`None` for in-process sessions).
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Whether this connection is held to the token buckets.
    pub fn is_limited(&self) -> bool {
        self.limited
    }

    /// Most bytes of EVENTs this connection may have waiting to be stored.
    pub fn max_pending_bytes(&self) -> usize {
        self.limiter.config.max_pending_bytes
    }

    /// May the client send one more EVENT (by `author`, when known)?
    pub fn event(&mut self, author: Option<&PublicKey>) -> Result<(), &'static str> {
        if !self.limited {
            return Ok(());
        }
        let now = Instant::now();
        let l = &self.limiter;
        if !self.events.take(&l.config.connection_events, 1.0, now) {
            return Err(RATE_LIMITED);
        }
        l.ip_take(&l.ip_events, self.ip, 1.0)?;
        if let Some(author) = author {
            let mut keys = l.pubkey_events.lock().expect("bucket lock");
            if !keys.take(author, 1.0, now) {
                return Err(RATE_LIMITED);
            }
        }
        Ok(())
    }

    /// An EVENT of this connection was refused: the penalty on top of its one token.
    pub fn refused(&mut self) {
        if !self.limited {
            return;
        }
        let now = Instant::now();
        let l = &self.limiter;
        let extra = f64::from(l.config.refused_event_cost.saturating_sub(1));
        self.events.charge(&l.config.connection_events, extra, now);
        if let Some(ip) = self.ip {
            l.ip_events
                .lock()
                .expect("bucket lock")
                .charge(&ip, extra, now);
        }
    }

    /// The client sent a message that could not be read. It costs what a refused EVENT
    /// costs; `Err` when the connection is over budget (the answer is then a
    /// `rate-limited:` notice rather than the parse error).
    pub fn malformed(&mut self) -> Result<(), &'static str> {
        if !self.limited {
            return Ok(());
        }
        let now = Instant::now();
        let l = &self.limiter;
        let cost = f64::from(l.config.refused_event_cost.max(1));
        let within = self.events.take(&l.config.connection_events, cost, now);
        if !within {
            self.events.charge(&l.config.connection_events, cost, now);
        }
        if let Some(ip) = self.ip {
            l.ip_events
                .lock()
                .expect("bucket lock")
                .charge(&ip, cost, now);
        }
        if within {
            Ok(())
        } else {
            Err(RATE_LIMITED)
        }
    }

    /// May the client open one more REQ, COUNT or NEG-OPEN?
    pub fn req(&mut self) -> Result<(), &'static str> {
        if !self.limited {
            return Ok(());
        }
        let l = &self.limiter;
        if !self
            .reqs
            .take(&l.config.connection_reqs, 1.0, Instant::now())
        {
            return Err(RATE_LIMITED);
        }
        l.ip_take(&l.ip_reqs, self.ip, 1.0)
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.limiter.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.counted_ip {
            let mut per_ip = self.limiter.per_ip.lock().expect("per-ip lock");
            if let Some(n) = per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateConfig {
        RateConfig {
            exempt_loopback: true,
            max_connections: 3,
            max_connections_per_ip: 2,
            connection_events: Rate::new(1, 5),
            connection_reqs: Rate::new(1, 2),
            ip_events: Rate::new(1, 8),
            ip_reqs: Rate::new(1, 100),
            pubkey_events: Rate::new(1, 100),
            refused_event_cost: 3,
            ..RateConfig::default()
        }
    }

    #[test]
    fn connection_caps_per_ip_and_in_all() {
        let limiter = Limiter::new(config());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.admit(Some(a)).unwrap();
        let _second = limiter.admit(Some(a)).unwrap();
        assert!(limiter
            .admit(Some(a))
            .unwrap_err()
            .contains("from 10.0.0.1"));
        let _third = limiter.admit(Some(b)).unwrap();
        assert!(limiter
            .admit(Some(b))
            .unwrap_err()
            .contains("too many connections"));
        drop(first);
        assert!(limiter.admit(Some(a)).is_ok());
    }

    #[test]
    fn refused_events_run_a_connection_dry_sooner() {
        let limiter = Limiter::new(config());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut honest = limiter.admit(Some(ip)).unwrap();
        assert_eq!((0..10).filter(|_| honest.event(None).is_ok()).count(), 5);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut junk = limiter.admit(Some(other)).unwrap();
        let mut sent = 0;
        while junk.event(None).is_ok() {
            junk.refused();
            sent += 1;
        }
        assert_eq!(sent, 2, "each refused event costs 3 of the 5 tokens");
    }

    #[test]
    fn the_ip_bucket_spans_connections_and_loopback_is_exempt() {
        let limiter = Limiter::new(config());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut one = limiter.admit(Some(ip)).unwrap();
        let mut two = limiter.admit(Some(ip)).unwrap();
        let taken = (0..5).filter(|_| one.event(None).is_ok()).count()
            + (0..5).filter(|_| two.event(None).is_ok()).count();
        assert_eq!(taken, 8);
        let mut local = limiter.admit(Some("127.0.0.1".parse().unwrap())).unwrap();
        assert!((0..1000).all(|_| local.event(None).is_ok() && local.req().is_ok()));
    }

    #[test]
    fn reqs_have_their_own_bucket() {
        let limiter = Limiter::new(config());
        let mut c = limiter.admit(Some("10.0.0.1".parse().unwrap())).unwrap();
        assert!(c.req().is_ok() && c.req().is_ok());
        assert_eq!(c.req(), Err(RATE_LIMITED));
        assert!(c.event(None).is_ok());
    }
}

//! Token buckets for rate limits, without I/O: the relay keeps them per connection, per IP
//! address and per public key, the request service per peer. A [`Rate`] is a refill speed
//! and a burst; a [`Bucket`] holds the tokens of one key; [`Buckets`] keeps the buckets of
//! many keys in a bounded table (full, idle buckets are dropped first, since dropping one
//! changes nothing). Callers pass the time in, so tests need no clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A refill speed and a burst (as written in `config.toml`: `{ per_sec = 50, burst = 200 }`).
/// A `per_sec` of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: u32,
    /// Most tokens a bucket holds (what a client may spend at once after a quiet spell).
    pub burst: u32,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        per_sec: 0,
        burst: 0,
    };

    pub const fn new(per_sec: u32, burst: u32) -> Self {
        Self { per_sec, burst }
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_sec == 0
    }

    fn per_sec_f(&self) -> f64 {
        f64::from(self.per_sec)
    }

    /// The burst, never below one token (so a cost of 1 can always be paid eventually).
    fn burst_f(&self) -> f64 {
        f64::from(self.burst.max(1))
    }
}

/// The tokens of one key.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: &Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst_f(),
            last: now,
        }
    }

    fn refill(&mut self, rate: &Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec_f()).min(rate.burst_f());
        self.last = now;
    }

    /// Takes `cost` tokens if the bucket holds them; false (and nothing taken) if not.
    pub fn take(&mut self, rate: &Rate, cost: f64, now: Instant) -> bool {
        if rate.is_unlimited() {
            return true;
        }
        self.refill(rate, now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Takes `cost` tokens even if that leaves the bucket in debt (a penalty: the key
    /// must wait for the debt to refill before it is served again).
    pub fn charge(&mut self, rate: &Rate, cost: f64, now: Instant) {
        if rate.is_unlimited() {
            return;
        }
        self.refill(rate, now);
        self.tokens = (self.tokens - cost).max(-rate.burst_f());
    }

    fn is_full(&self, rate: &Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_sec_f() >= rate.burst_f()
    }
}

/// Buckets of many keys sharing one rate, at most `max_keys` of them.
#[derive(Debug)]
pub struct Buckets<K> {
    rate: Rate,
    max_keys: usize,
    map: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            map: HashMap::new(),
        }
    }

    pub fn rate(&self) -> &Rate {
        &self.rate
    }

    /// Takes `cost` tokens from `key`'s bucket; false if it lacks them.
    pub fn take(&mut self, key: &K, cost: f64, now: Instant) -> bool {
        if self.rate.is_unlimited() {
            return true;
        }
        let rate = self.rate;
        self.bucket(key, now).take(&rate, cost, now)
    }

    /// Charges `key` a penalty of `cost` tokens (see [`Bucket::charge`]).
    pub fn charge(&mut self, key: &K, cost: f64, now: Instant) {
        if self.rate.is_unlimited() {
            return;
        }
        let rate = self.rate;
        self.bucket(key, now).charge(&rate, cost, now);
    }

    /// Keys with a bucket.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn bucket(&mut self, key: &K, now: Instant) -> &mut Bucket {
        if !self.map.contains_key(key) && self.map.len() >= self.max_keys {
            self.evict(now);
        }
        let rate = self.rate;
        self.map
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(&rate, now))
    }

    /// Drops the full buckets; if none is full, the one with the most tokens (a key that
    /// is flooding keeps its debt).
    fn evict(&mut self, now: Instant) {
        let rate = self.rate;
        self.map.retain(|_, b| !b.is_full(&rate, now));
        if self.map.len() >= self.max_keys {
            let richest = self
                .map
                .iter()
                .max_by(|a, b| a.1.tokens.total_cmp(&b.1.tokens))
                .map(|(k, _)| k.clone());
            if let Some(k) = richest {
                self.map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let rate = Rate::new(10, 5);
        let t0 = Instant::now();
        let mut b = Bucket::new(&rate, t0);
        assert!((0..5).all(|_| b.take(&rate, 1.0, t0)));
        assert!(!b.take(&rate, 1.0, t0));
        // 10 per second: one token back after 100 ms.
        assert!(b.take(&rate, 1.0, t0 + Duration::from_millis(100)));
        assert!(!b.take(&rate, 1.0, t0 + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(&rate, 1.0, later)).count(), 5);
    }

    #[test]
    fn a_penalty_leaves_a_debt_to_wait_out() {
        let rate = Rate::new(10, 10);
        let t0 = Instant::now();
        let mut b = Bucket::new(&rate, t0);
        b.charge(&rate, 15.0, t0);
        assert!(!b.take(&rate, 1.0, t0 + Duration::from_millis(500)));
        assert!(b.take(&rate, 1.0, t0 + Duration::from_millis(600)));
    }

    #[test]
    fn unlimited_always_allows() {
        let mut b = Buckets::new(Rate::UNLIMITED, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|i| b.take(&i, 100.0, t0)));
        assert!(b.is_empty());
    }

    #[test]
    fn keys_are_separate_and_the_table_is_bounded() {
        let mut b = Buckets::new(Rate::new(1, 2), 3);
        let t0 = Instant::now();
        assert!(b.take(&"a", 2.0, t0));
        assert!(!b.take(&"a", 1.0, t0));
        assert!(b.take(&"b", 2.0, t0));
        for k in ["c", "d", "e", "f"] {
            b.take(&k, 0.5, t0);
        }
        assert!(b.len() <= 3);
        // The flooding key keeps its empty bucket; richer ones were dropped.
        assert!(!b.take(&"a", 1.0, t0));
    }
}

//! Counts of the peer requests this node answered, by kind, since it started: what
//! serving as a home-set member and as an author's node costs, for `status` and for
//! the replica-load benchmark.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::wire::RequestBody;

/// The counters; the request service is their only writer.
#[derive(Debug, Default)]
pub struct Served {
    push: AtomicU64,
    subscribe: AtomicU64,
    unsubscribe: AtomicU64,
    fetch: AtomicU64,
    moved: AtomicU64,
    reconcile: AtomicU64,
}

/// A snapshot of [`Served`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ServedStatus {
    pub push: u64,
    pub subscribe: u64,
    pub unsubscribe: u64,
    pub fetch: u64,
    pub moved: u64,
    pub reconcile: u64,
}

impl ServedStatus {
    /// Every request answered.
    pub fn total(&self) -> u64 {
        self.push + self.subscribe + self.unsubscribe + self.fetch + self.moved + self.reconcile
    }
}

impl Served {
    /// Counts one answered request.
    pub fn count(&self, body: &RequestBody) {
        let counter = match body {
            RequestBody::Push { .. } => &self.push,
            RequestBody::Subscribe { .. } => &self.subscribe,
            RequestBody::Unsubscribe { .. } => &self.unsubscribe,
            RequestBody::Fetch { .. } => &self.fetch,
            RequestBody::Moved { .. } => &self.moved,
            RequestBody::Reconcile { .. } => &self.reconcile,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ServedStatus {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServedStatus {
            push: get(&self.push),
            subscribe: get(&self.subscribe),
            unsubscribe: get(&self.unsubscribe),
            fetch: get(&self.fetch),
            moved: get(&self.moved),
            reconcile: get(&self.reconcile),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind() {
        let served = Served::default();
        served.count(&RequestBody::Push { events: vec![] });
        served.count(&RequestBody::Push { events: vec![] });
        served.count(&RequestBody::Fetch {
            filters: vec![],
            limit: 1,
        });
        let s = served.snapshot();
        assert_eq!((s.push, s.fetch, s.reconcile, s.total()), (2, 1, 0, 3));
    }
}

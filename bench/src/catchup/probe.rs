//! What one home-set lookup costs: an idle node that has never served the authors looks
//! up the home sets of a few of them afresh, one at a time, and the bytes every node
//! wrote during each lookup are summed. Both catch-up methods start with such a lookup
//! per followed author (a restarted node's home-set cache is empty), so this is the
//! per-author part of their bytes that does not depend on how many events were missed.

use std::time::Instant;

use serde::Serialize;
use starling_net::sim::SimNode;
use starling_proto::PublicKey;

use crate::netsim;

/// Lookups measured.
pub const LOOKUPS: usize = 20;

/// Bytes and seconds per fresh home-set lookup.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LookupCost {
    pub lookups: usize,
    pub failed: usize,
    /// Mean bytes all nodes wrote per lookup (background not taken off: each lookup
    /// takes milliseconds).
    pub mean_bytes: f64,
    pub max_bytes: u64,
    pub mean_ms: f64,
}

/// Looks up `authors`' home sets afresh from `node`, one at a time.
pub async fn lookups(node: &SimNode, all: &[&SimNode], authors: &[PublicKey]) -> LookupCost {
    let mut cost = LookupCost::default();
    let (mut bytes, mut ms) = (0u64, 0f64);
    for author in authors {
        let before = netsim::sent(all.iter().copied());
        let t = Instant::now();
        let found = node.net.network().home_set(*author, true).await;
        let spent = netsim::sent(all.iter().copied()) - before;
        ms += t.elapsed().as_secs_f64() * 1_000.0;
        cost.lookups += 1;
        if found.is_err() {
            cost.failed += 1;
        }
        bytes += spent;
        cost.max_bytes = cost.max_bytes.max(spent);
    }
    let n = cost.lookups.max(1) as f64;
    cost.mean_bytes = bytes as f64 / n;
    cost.mean_ms = ms / n;
    cost
}

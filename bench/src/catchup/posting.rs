//! The authors' notes: each author's node publishes its notes as the owner (the owner's
//! own path, so its outbox pushes them to its home set), one task per author. Notes are
//! dated into the past: the notes R sees before going offline an hour before the offline
//! span starts, the offline notes spread evenly over the span that ends now, so the run
//! looks like a follower that was away for `offline_secs` (the dates matter to the naive
//! method's `since` and to starling's catch-up window, not to delivery).

use std::sync::Arc;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::Rng;
use starling_core::{Ingest, Origin};
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Timestamp};
use tokio::task::JoinSet;

use crate::gen::note_text;
use crate::netsim;
use starling_net::sim::SimNode;

/// One author's notes to publish: `(created_at, text)`.
type Plan = Vec<(u64, String)>;

/// What a posting phase did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Posted {
    pub events: usize,
    pub failed: usize,
    pub secs: f64,
}

/// Notes of every author: `count` each, dated evenly from `from` to `to` (seconds), with
/// texts of `min..=max` bytes.
pub fn plan(
    authors: usize,
    count: usize,
    from: u64,
    to: u64,
    (min, max): (usize, usize),
    rng: &mut StdRng,
) -> Vec<Plan> {
    let span = to.saturating_sub(from).max(1);
    (0..authors)
        .map(|_| {
            (0..count)
                .map(|k| {
                    let at = from + span * (k as u64 + 1) / (count as u64 + 1);
                    let jitter = rng.gen_range(0..60u64.min(span / (count as u64 + 1)).max(1));
                    (at + jitter, note_text(rng, min, max))
                })
                .collect()
        })
        .collect()
}

/// Publishes `plans[j]` at author node `j`, all authors at once; waits for all.
pub async fn publish(nodes: &[SimNode], plans: Vec<Plan>) -> Posted {
    let started = std::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (node, plan) in nodes.iter().zip(plans) {
        let keys = node.keys.clone();
        let ingest = node.ingest.clone();
        tasks.spawn(async move { post_all(&keys, &ingest, plan).await });
    }
    let mut posted = Posted::default();
    while let Some(done) = tasks.join_next().await {
        let (ok, failed) = done.unwrap_or((0, 1));
        posted.events += ok;
        posted.failed += failed;
    }
    posted.secs = started.elapsed().as_secs_f64();
    posted
}

/// Signs and submits one author's notes in order; returns (accepted, refused).
async fn post_all(keys: &Keys, ingest: &Arc<Ingest>, plan: Plan) -> (usize, usize) {
    let (mut ok, mut failed) = (0, 0);
    for (at, text) in plan {
        match post(keys, ingest, at, text).await {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    eprintln!("    a post was refused: {e:#}");
                }
            }
        }
    }
    (ok, failed)
}

async fn post(keys: &Keys, ingest: &Ingest, at: u64, text: String) -> Result<()> {
    let event = EventBuilder::new(Kind::TextNote, text)
        .custom_created_at(Timestamp::from(at))
        .finalize(keys)?;
    ingest
        .submit(event, Origin::LocalClient)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    Timestamp::now().as_secs()
}

/// Seeded RNG for the texts of one phase.
pub fn texts_rng(seed: u64, phase: u64) -> StdRng {
    netsim::rng(seed, 0x7465_7874 ^ phase)
}

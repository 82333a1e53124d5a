//! The posting window of a configuration. One collector task per node, spawned before the
//! first post, takes every kind-1 note newly stored at its node off the node's event bus and
//! reports it with its arrival instant; then every node posts its notes at seeded random
//! offsets within the spread, recording each publish instant; the window ends when every
//! expected follower delivery arrived (plus a short grace for trailing traffic) or at the
//! delivery deadline.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;
use starling_core::EventBus;
use starling_proto::{EventBuilder, EventId, Kind, PublicKey};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::scale::cluster::Cluster;
use crate::scale::graph::Graph;

/// Arrivals that may wait for the aggregator.
const ARRIVALS: usize = 65_536;
/// After the last expected delivery, trailing traffic (acks, gossip) is still counted.
pub const GRACE: Duration = Duration::from_secs(1);

/// A note newly stored at `node`, by `author`.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub node: usize,
    pub author: usize,
    pub id: EventId,
    pub at: Instant,
}

/// A note an author's node accepted.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub author: usize,
    pub id: EventId,
    pub at: Instant,
}

/// What the window collected.
#[derive(Debug, Default)]
pub struct Samples {
    pub published: Vec<Published>,
    pub arrivals: Vec<Arrival>,
    /// Posts the author's own node refused.
    pub failed_posts: Vec<String>,
    /// Arrivals a collector missed because its bus receiver lagged.
    pub lagged: u64,
    pub window: Duration,
    /// Whether every expected delivery arrived before the deadline.
    pub complete: bool,
}

/// Runs the posting window: collectors, posts, wait. `expected` is the number of
/// follower deliveries that ends the wait early.
pub async fn run(
    cluster: &Cluster,
    graph: &Graph,
    posts_per_node: usize,
    spread: Duration,
    delivery_timeout: Duration,
    rng: &mut StdRng,
) -> Samples {
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(ARRIVALS);
    let authors: Arc<HashMap<PublicKey, usize>> = Arc::new(
        (cluster.nodes.iter().enumerate())
            .map(|(i, n)| (n.keys.public_key(), i))
            .collect(),
    );
    let mut collectors = JoinSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let c = Collector {
            node: i,
            bus: node.bus.clone(),
            authors: authors.clone(),
            out: tx.clone(),
        };
        collectors.spawn(c.run(stop.clone()));
    }
    drop(tx);
    let start = Instant::now();
    let mut posting = spawn_posts(cluster, posts_per_node, spread, rng);
    let expected = posts_per_node * graph.edge_count();
    let deadline = start + spread + delivery_timeout;
    let mut samples = Samples::default();
    let mut wait = Wait {
        graph,
        expected,
        got: HashSet::new(),
        posting_done: false,
    };
    wait.run(&mut rx, &mut posting, &mut samples, deadline)
        .await;
    samples.window = start.elapsed();
    stop.cancel();
    while let Some(done) = collectors.join_next().await {
        samples.lagged += done.unwrap_or(0);
    }
    samples
}

/// The aggregator's loop state.
struct Wait<'a> {
    graph: &'a Graph,
    expected: usize,
    got: HashSet<(usize, EventId)>,
    posting_done: bool,
}

impl Wait<'_> {
    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<Arrival>,
        posting: &mut JoinSet<PostResult>,
        samples: &mut Samples,
        deadline: Instant,
    ) {
        let mut end = deadline;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end.into()) => break,
                Some(done) = posting.join_next(), if !self.posting_done => {
                    if let Ok((published, failed)) = done {
                        samples.published.extend(published);
                        samples.failed_posts.extend(failed);
                    }
                    self.posting_done = posting.is_empty();
                }
                arrival = rx.recv() => match arrival {
                    Some(a) => {
                        if self.graph.follows(a.node, a.author) {
                            self.got.insert((a.node, a.id));
                        }
                        samples.arrivals.push(a);
                    }
                    None => break,
                },
            }
            if !samples.complete && self.posting_done && self.got.len() >= self.expected {
                samples.complete = true;
                end = (Instant::now() + GRACE).min(deadline);
            }
        }
    }
}

/// One node's bus, watched for notes.
struct Collector {
    node: usize,
    bus: EventBus,
    authors: Arc<HashMap<PublicKey, usize>>,
    out: mpsc::Sender<Arrival>,
}

impl Collector {
    /// Reports arrivals until cancelled; returns how many it missed by lagging.
    async fn run(self, stop: CancellationToken) -> u64 {
        let mut rx = self.bus.subscribe();
        let mut lagged = 0;
        loop {
            let live = tokio::select! {
                _ = stop.cancelled() => return lagged,
                item = rx.recv() => match item {
                    Ok(live) => live,
                    Err(RecvError::Lagged(n)) => {
                        lagged += n;
                        continue;
                    }
                    Err(RecvError::Closed) => return lagged,
                },
            };
            let at = Instant::now();
            if live.event.kind != Kind::TextNote {
                continue;
            }
            let Some(&author) = self.authors.get(&live.event.pubkey) else {
                continue;
            };
            if author == self.node {
                continue; // the author's own post, stored at publish
            }
            let arrival = Arrival {
                node: self.node,
                author,
                id: live.event.id,
                at,
            };
            if self.out.send(arrival).await.is_err() {
                return lagged;
            }
        }
    }
}

type PostResult = (Vec<Published>, Vec<String>);

/// One task per node posting its notes at its offsets within `spread`.
fn spawn_posts(
    cluster: &Cluster,
    posts_per_node: usize,
    spread: Duration,
    rng: &mut StdRng,
) -> JoinSet<PostResult> {
    let start = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut offsets: Vec<Duration> = (0..posts_per_node)
            .map(|_| Duration::from_micros(rng.gen_range(0..spread.as_micros().max(1) as u64)))
            .collect();
        offsets.sort_unstable();
        let keys = node.keys.clone();
        let ingest = node.ingest.clone();
        tasks.spawn(async move {
            let mut published = Vec::with_capacity(offsets.len());
            let mut failed = Vec::new();
            for (k, offset) in offsets.into_iter().enumerate() {
                tokio::time::sleep_until(start + offset).await;
                let builder =
                    EventBuilder::new(Kind::TextNote, format!("scale post {k} by node {i}"));
                match post(&keys, &ingest, builder).await {
                    Ok((id, at)) => published.push(Published { author: i, id, at }),
                    Err(e) => failed.push(format!("node {i} post {k}: {e}")),
                }
            }
            (published, failed)
        });
    }
    tasks
}

/// Signs and submits one note as the owner; the publish instant is taken before submit.
async fn post(
    keys: &starling_proto::Keys,
    ingest: &starling_core::Ingest,
    builder: EventBuilder,
) -> anyhow::Result<(EventId, Instant)> {
    use starling_proto::FinalizeEvent;
    let event = builder.finalize(keys)?;
    let id = event.id;
    let at = Instant::now();
    ingest
        .submit(event, starling_core::Origin::LocalClient)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((id, at))
}

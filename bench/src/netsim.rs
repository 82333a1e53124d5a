//! Shared by the `catchup` and `replica_load` benchmarks: in-process starling nodes
//! ([`SimNode`]) started on `/memory/` addresses with seeded network keys, and the bounded
//! waits both scenarios need — every node connected, every follower subscribed, every
//! outbox drained, the network quiet — plus the byte counter summed over nodes.
//!
//! Every wait takes a deadline and returns what it saw at the end instead of failing, so
//! a run that misses one still reports.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use serde::Serialize;
use starling_net::libp2p::identity::Keypair;
use starling_net::sim::SimNode;
use starling_net::{NetNodeStatus, NetSettings};
use starling_proto::Keys;
use tokio::task::JoinSet;

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(500);
/// Longest status pass (all nodes asked at once).
const STATUS_TIMEOUT: Duration = Duration::from_secs(20);
/// A quiet span: longer than AutoNAT v2's 5 s probe interval.
const QUIET_SPAN: Duration = Duration::from_millis(5_500);
/// Quiet: under this many bytes per second per node, plus [`PING_BYTES_PER_CONN_SEC`] per
/// connection end (libp2p ping on every connection). As in the scale benchmark.
const QUIET_BYTES_PER_NODE_SEC: f64 = 500.0;
const PING_BYTES_PER_CONN_SEC: f64 = 20.0;

/// A seeded ed25519 network key (so home sets, which depend on PeerIds, repeat per seed).
pub fn node_key(rng: &mut StdRng) -> Result<Keypair> {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    Keypair::ed25519_from_bytes(bytes).context("ed25519 key from seed bytes")
}

/// Starts a node in `dir` with network key `key` (written to `dir/node.key`, where
/// [`SimNode::start`] reads it), listening on `addr`. A stopped node's listener on the
/// same address closes asynchronously, so listening is retried for a moment.
pub async fn start(
    dir: &Path,
    keys: Keys,
    key: &Keypair,
    addr: &str,
    bootstrap: &[String],
) -> Result<SimNode> {
    std::fs::create_dir_all(dir)?;
    let bytes = key.to_protobuf_encoding().context("encode the node key")?;
    std::fs::write(dir.join("node.key"), bytes)?;
    let mut last = None;
    for _ in 0..50 {
        let settings = NetSettings {
            listen: vec![addr.parse()?],
            bootstrap: bootstrap.iter().filter_map(|a| a.parse().ok()).collect(),
            // Memory addresses cannot be checked by AutoNAT: take them as reachable.
            public: true,
            ..NetSettings::default()
        };
        match SimNode::start(dir, keys.clone(), settings).await {
            Ok(node) => return Ok(node),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow::anyhow!("start {}: {:?}", dir.display(), last))
}

/// The address other nodes dial `node` at (`/memory/N/p2p/PEER`).
pub async fn dialable(node: &SimNode) -> Result<String> {
    Ok(node.addr().await?.to_string())
}

/// Starts `n` nodes owned by `owners`, in `dir/node{i}` on `/memory/{base + i}`, one after
/// another; each bootstraps from up to three random earlier ones. Returns the nodes and
/// their dialable addresses.
pub async fn start_many(
    owners: &[Keys],
    base: u64,
    dir: &Path,
    rng: &mut StdRng,
    deadline: Instant,
) -> Result<(Vec<SimNode>, Vec<String>)> {
    let mut nodes = Vec::with_capacity(owners.len());
    let mut addrs: Vec<String> = Vec::with_capacity(owners.len());
    for (i, keys) in owners.iter().enumerate() {
        if Instant::now() > deadline {
            anyhow::bail!("only {i} of {} nodes started in time", owners.len());
        }
        let boot: Vec<String> = addrs.choose_multiple(rng, 3).cloned().collect();
        let key = node_key(rng)?;
        let addr = format!("/memory/{}", base + i as u64);
        let node = start(
            &dir.join(format!("node{i}")),
            keys.clone(),
            &key,
            &addr,
            &boot,
        )
        .await?;
        addrs.push(dialable(&node).await?);
        nodes.push(node);
    }
    Ok((nodes, addrs))
}

/// Bytes the nodes have written to memory connections so far.
pub fn sent<'a>(nodes: impl IntoIterator<Item = &'a SimNode>) -> u64 {
    nodes.into_iter().map(|n| n.traffic.sent()).sum()
}

/// Every node's status, asked concurrently; `None` if the pass did not end in
/// [`STATUS_TIMEOUT`] or a node failed to answer.
pub async fn statuses(nodes: &[&SimNode]) -> Option<Vec<NetNodeStatus>> {
    let mut asks = JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let remote = node.net.remote.clone();
        asks.spawn(async move { (i, remote.node_status().await) });
    }
    let collect = async {
        let mut out: Vec<Option<NetNodeStatus>> = vec![None; nodes.len()];
        while let Some(done) = asks.join_next().await {
            let (i, status) = done.ok()?;
            out[i] = Some(status.ok()?);
        }
        out.into_iter().collect::<Option<Vec<_>>>()
    };
    tokio::time::timeout(STATUS_TIMEOUT, collect)
        .await
        .ok()
        .flatten()
}

/// Polls statuses until `done` says so or `deadline`; returns the last value `done`
/// computed (and whether it was done). `label` names the wait in progress lines.
pub async fn wait_until<T: Clone + std::fmt::Debug>(
    nodes: &[&SimNode],
    deadline: Instant,
    label: &str,
    done: impl Fn(&[NetNodeStatus]) -> (bool, T),
) -> (bool, Option<T>) {
    let started = Instant::now();
    let mut printed = started;
    let mut last = None;
    loop {
        if let Some(all) = statuses(nodes).await {
            let (ok, value) = done(&all);
            if ok {
                return (true, Some(value));
            }
            last = Some(value);
        }
        if Instant::now() + POLL > deadline {
            return (false, last);
        }
        if printed.elapsed() >= Duration::from_secs(10) {
            printed = Instant::now();
            eprintln!(
                "    waiting for {label}: {last:?} after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every node has a peer; returns how many had none at the end.
pub async fn wait_connected(nodes: &[&SimNode], deadline: Instant) -> usize {
    let (_, lonely) = wait_until(nodes, deadline, "connections", |all| {
        let lonely = all.iter().filter(|s| s.net.peers.is_empty()).count();
        (lonely == 0, lonely)
    })
    .await;
    lonely.unwrap_or(nodes.len())
}

/// Waits until the followers hold `edges` live subscriptions in all (status `subscribed`,
/// the follower's side); returns the count at the end.
pub async fn wait_subscribed(nodes: &[&SimNode], edges: usize, deadline: Instant) -> usize {
    let (_, got) = wait_until(nodes, deadline, "subscriptions", |all| {
        let got: usize = all.iter().map(|s| s.subscribed).sum();
        (got >= edges, got)
    })
    .await;
    got.unwrap_or(0)
}

/// Waits until no node's outbox has a pending row; returns the pending rows at the end.
pub async fn wait_drained(nodes: &[&SimNode], deadline: Instant) -> u64 {
    let (_, pending) = wait_until(nodes, deadline, "outboxes to drain", |all| {
        let pending: u64 = all.iter().map(|s| s.outbox.pending).sum();
        (pending == 0, pending)
    })
    .await;
    pending.unwrap_or(u64::MAX)
}

/// How settling went: whether a quiet span was reached, and the rate of the last span.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quiet {
    pub quiet: bool,
    pub secs: f64,
    /// Bytes per second all the nodes sent in the last span: the background rate.
    pub bytes_per_sec: f64,
}

/// Waits until the nodes are quiet (a [`QUIET_SPAN`] under the threshold), for about
/// `limit` at most; at least one span is measured.
pub async fn settle_quiet(nodes: &[&SimNode], limit: Duration) -> Quiet {
    let started = Instant::now();
    loop {
        let before = sent(nodes.iter().copied());
        tokio::time::sleep(QUIET_SPAN).await;
        let rate = (sent(nodes.iter().copied()) - before) as f64 / QUIET_SPAN.as_secs_f64();
        let conn_ends: usize = statuses(nodes)
            .await
            .map_or(0, |all| all.iter().map(|s| s.net.peers.len()).sum());
        let quiet_rate = QUIET_BYTES_PER_NODE_SEC * nodes.len() as f64
            + PING_BYTES_PER_CONN_SEC * conn_ends as f64;
        let quiet = rate < quiet_rate;
        if quiet || started.elapsed() + QUIET_SPAN > limit {
            return Quiet {
                quiet,
                secs: started.elapsed().as_secs_f64(),
                bytes_per_sec: rate,
            };
        }
        eprintln!(
            "    settling: {:.0} KB/s sent by all nodes (quiet below {:.0} KB/s)",
            rate / 1_000.0,
            quiet_rate / 1_000.0
        );
    }
}

/// Bytes per second the nodes send over `span` (the background rate of a quiet network:
/// pings every 60 s per connection, Kademlia's periodic work).
pub async fn background(nodes: &[&SimNode], span: Duration) -> f64 {
    let before = sent(nodes.iter().copied());
    tokio::time::sleep(span).await;
    (sent(nodes.iter().copied()) - before) as f64 / span.as_secs_f64()
}

/// Stops the nodes at once; false if they did not all stop within `timeout`.
pub async fn stop_all(nodes: Vec<SimNode>, timeout: Duration) -> bool {
    let mut stopping = JoinSet::new();
    for node in nodes {
        stopping.spawn(node.stop());
    }
    let all = async { while stopping.join_next().await.is_some() {} };
    let done = tokio::time::timeout(timeout, all).await.is_ok();
    if !done {
        stopping.abort_all();
    }
    done
}

/// A seeded RNG for one purpose of a run.
pub fn rng(seed: u64, purpose: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

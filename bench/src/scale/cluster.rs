//! N nodes of one configuration: started one after another (node 0 first, as everyone's
//! bootstrap), set up (follow lists published and subscriptions awaited, or just connected
//! for broadcast mode), measured (summed byte counters, peer counts) and stopped. All
//! waits are bounded by the configuration's setup deadline.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use starling_proto::{EventBuilder, Keys, Kind, Tag};
use tokio::task::JoinSet;

use crate::netsim;
use crate::scale::graph::Graph;
use starling_net::sim::SimNode;
use starling_net::NetSettings;

/// How often setup progress is polled, and printed.
const POLL: Duration = Duration::from_millis(500);
const PRINT_EVERY: Duration = Duration::from_secs(5);
/// Broadcast mode: time for gossipsub to exchange subscriptions and build meshes
/// (a few heartbeats of 1 s) once every node is connected.
pub const MESH_SETTLE: Duration = Duration::from_secs(5);

/// The nodes of one configuration and their directory (removed on drop).
pub struct Cluster {
    pub nodes: Vec<SimNode>,
    _dir: tempfile::TempDir,
}

/// How setup went.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Seconds to start all nodes.
    pub start_secs: f64,
    /// Seconds from the first node's start to the end of setup.
    pub total_secs: f64,
    pub complete: bool,
    /// Follow mode: live subscriptions at the authors' nodes, summed.
    pub subscriptions: usize,
    /// Follow mode: subscriptions expected (the graph's edges).
    pub expected_subscriptions: usize,
    /// Mean connected peers per node at the end of setup.
    pub mean_peers: f64,
    pub notes: Vec<String>,
}

/// What one node reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub peers: usize,
    pub subscribers: usize,
}

/// How the settling after setup went (shared with the other network benchmarks).
pub use crate::netsim::Quiet;

impl Cluster {
    /// Starts `n` nodes on `/memory/{base + i}`; node 0 bootstraps the others.
    pub async fn start(n: usize, base: u64, broadcast: bool, deadline: Instant) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("starling-scale-")
            .tempdir()?;
        let mut nodes: Vec<SimNode> = Vec::with_capacity(n);
        let mut boot = None;
        for i in 0..n {
            if Instant::now() > deadline {
                bail!("only {i} of {n} nodes started before the setup deadline");
            }
            let settings = NetSettings {
                listen: vec![format!("/memory/{}", base + i as u64).parse()?],
                bootstrap: boot.clone().into_iter().collect(),
                // Memory addresses cannot be checked by AutoNAT: take them as reachable.
                public: true,
                broadcast,
                ..NetSettings::default()
            };
            let dir = dir.path().join(format!("node{i}"));
            let node = SimNode::start(&dir, Keys::generate(), settings).await?;
            if i == 0 {
                boot = Some(node.addr().await?);
            }
            nodes.push(node);
        }
        Ok(Cluster { nodes, _dir: dir })
    }

    /// Waits until every node has a connected peer. Returns how many had none at the last
    /// complete status pass.
    pub async fn wait_connected(&self, deadline: Instant) -> Result<usize> {
        let mut lonely = self.nodes.len();
        loop {
            match self.statuses(deadline).await? {
                Some(counts) => lonely = counts.iter().filter(|c| c.peers == 0).count(),
                None => return Ok(lonely),
            }
            if lonely == 0 || Instant::now() + POLL > deadline {
                return Ok(lonely);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Broadcast mode: connected, then a few gossipsub heartbeats.
    pub async fn settle_broadcast(&self, deadline: Instant) -> Result<(bool, Vec<String>)> {
        let lonely = self.wait_connected(deadline).await?;
        let settle_until = (Instant::now() + MESH_SETTLE).min(deadline);
        tokio::time::sleep_until(settle_until.into()).await;
        let mut notes = Vec::new();
        if lonely > 0 {
            notes.push(format!(
                "{lonely} node(s) had no peer at the setup deadline"
            ));
        }
        Ok((lonely == 0, notes))
    }

    /// Follow mode: each node publishes its owner's follow list (kind 3, `p` tags).
    pub async fn publish_follow_lists(&self, graph: &Graph) -> Result<()> {
        for (i, node) in self.nodes.iter().enumerate() {
            let tags = graph.follows[i]
                .iter()
                .map(|&a| Tag::public_key(self.nodes[a].keys.public_key()));
            node.publish(EventBuilder::new(Kind::ContactList, "").tags(tags))
                .await
                .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Follow mode: waits until the authors' nodes hold `expected` subscriptions in all.
    /// Returns the count at the last complete status pass.
    pub async fn wait_subscribed(&self, expected: usize, deadline: Instant) -> Result<usize> {
        let started = Instant::now();
        let mut printed = started;
        let mut got = 0;
        loop {
            let pass = Instant::now();
            match self.statuses(deadline).await? {
                Some(counts) => got = counts.iter().map(|c| c.subscribers).sum(),
                None => return Ok(got),
            }
            if got >= expected || Instant::now() + POLL > deadline {
                return Ok(got);
            }
            if printed.elapsed() >= PRINT_EVERY {
                printed = Instant::now();
                eprintln!(
                    "    subscriptions {got}/{expected} after {:.0} s (status pass {:.1} s)",
                    started.elapsed().as_secs_f64(),
                    pass.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the nodes are quiet (see `netsim::settle_quiet`), for about `limit` at
    /// most.
    pub async fn settle_quiet(&self, limit: Duration) -> Quiet {
        let nodes: Vec<&SimNode> = self.nodes.iter().collect();
        netsim::settle_quiet(&nodes, limit).await
    }

    /// Every node's peer and subscriber counts, asked concurrently; `None` when the pass
    /// did not finish by `deadline` (nodes saturated).
    pub async fn statuses(&self, deadline: Instant) -> Result<Option<Vec<Counts>>> {
        let mut asks = JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let remote = node.net.remote.clone();
            asks.spawn(async move { (i, remote.node_status().await) });
        }
        let mut counts = vec![Counts::default(); self.nodes.len()];
        let collect = async {
            while let Some(done) = asks.join_next().await {
                let (i, status) = done?;
                let status = status?;
                counts[i] = Counts {
                    peers: status.net.peers.len(),
                    subscribers: status.subscribers,
                };
            }
            anyhow::Ok(())
        };
        match tokio::time::timeout_at(deadline.into(), collect).await {
            Ok(result) => result.map(|()| Some(counts)),
            Err(_) => Ok(None),
        }
    }

    /// Live subscriptions summed over the nodes, and the mean number of connected peers
    /// (`None` if the status pass did not finish by `deadline`).
    pub async fn census(&self, deadline: Instant) -> Result<Option<(usize, f64)>> {
        let Some(counts) = self.statuses(deadline).await? else {
            return Ok(None);
        };
        let subs = counts.iter().map(|c| c.subscribers).sum();
        let peers = counts.iter().map(|c| c.peers).sum::<usize>() as f64;
        Ok(Some((subs, peers / counts.len().max(1) as f64)))
    }

    /// Bytes all nodes have written to memory connections so far.
    pub fn sent(&self) -> u64 {
        netsim::sent(&self.nodes)
    }

    /// Stops every node at once; false if they did not all stop within `timeout`.
    pub async fn stop(self, timeout: Duration) -> bool {
        netsim::stop_all(self.nodes, timeout).await
    }
}

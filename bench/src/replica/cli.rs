//! Command-line flags of the replica-load benchmark and the validated settings built from
//! them (raw flags → [`Settings`], passed down explicitly).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use serde::Serialize;

/// Home-set load: what every node of an in-process network stores and serves.
///
/// N nodes follow each other on a seeded power-law graph and post notes and replies;
/// once every outbox drained and the network settled, each node is asked what it holds:
/// authors it keeps as a home-set member, stored event bytes, other users' events,
/// subscribers, bytes sent. Prints the distribution over nodes and writes every figure
/// as JSON. Nothing is asserted.
#[derive(Debug, Clone, Parser)]
#[command(name = "replica_load", version)]
pub struct Args {
    /// Nodes, one user each.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,

    /// Events each user posts (one per round).
    #[arg(long, default_value_t = 20)]
    pub posts_per_node: usize,

    /// Share of posts that reply to a followee's earlier post (`e` and `p` tags).
    #[arg(long, default_value_t = 0.3)]
    pub reply_share: f64,

    /// Fewest authors each user follows (preferential attachment).
    #[arg(long, default_value_t = 3)]
    pub min_follows: usize,

    /// Most authors each user follows.
    #[arg(long, default_value_t = 8)]
    pub max_follows: usize,

    /// Shortest note text, bytes.
    #[arg(long, default_value_t = 100)]
    pub min_text: usize,

    /// Longest note text, bytes.
    #[arg(long, default_value_t = 300)]
    pub max_text: usize,

    /// Pause between two posting rounds, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub round_gap_ms: u64,

    /// Seed of the graph, keys, texts and replies.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Longest setup (nodes started, every subscription live), seconds.
    #[arg(long, default_value_t = 300)]
    pub setup_timeout: u64,

    /// Longest wait for every outbox to drain after the last post, seconds.
    #[arg(long, default_value_t = 240)]
    pub drain_timeout: u64,

    /// Settling after the outboxes drained (members sync a pushed author a few seconds
    /// after the pushes stop), seconds.
    #[arg(long, default_value_t = 15)]
    pub settle_secs: u64,

    /// Placement computed (not run) for this many reachable nodes, to see the skew of
    /// home-set load at a larger scale; 0 skips it.
    #[arg(long, default_value_t = 2_000)]
    pub placement_nodes: usize,

    /// Shares of users that run a reachable node, for the placement.
    #[arg(long, value_delimiter = ',', default_values_t = [0.3, 0.5])]
    pub reachable_shares: Vec<f64>,

    /// Output file; relative paths are taken from the workspace root.
    #[arg(long, default_value = "bench/results/replica_load.json")]
    pub out: PathBuf,

    /// Print only; write no result file.
    #[arg(long)]
    pub no_write: bool,
}

/// Validated settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub nodes: usize,
    pub posts_per_node: usize,
    pub reply_share: f64,
    pub min_follows: usize,
    pub max_follows: usize,
    pub min_text: usize,
    pub max_text: usize,
    pub round_gap: Duration,
    pub seed: u64,
    pub setup_timeout: Duration,
    pub drain_timeout: Duration,
    pub settle: Duration,
    pub placement_nodes: usize,
    pub reachable_shares: Vec<f64>,
    /// Output file, `None` with `--no-write`.
    pub out: Option<PathBuf>,
    pub command: String,
}

impl Args {
    pub fn resolve(self) -> Result<Settings> {
        if !(5..=500).contains(&self.nodes) {
            bail!("--nodes takes 5 to 500");
        }
        if self.posts_per_node == 0 || self.posts_per_node > 1_000 {
            bail!("--posts-per-node takes 1 to 1000");
        }
        if !(0.0..=1.0).contains(&self.reply_share) {
            bail!("--reply-share takes 0 to 1");
        }
        if self.min_follows == 0 || self.min_follows > self.max_follows {
            bail!("need 1 <= --min-follows <= --max-follows");
        }
        if self.min_text == 0 || self.min_text > self.max_text || self.max_text > 10_000 {
            bail!("need 1 <= --min-text <= --max-text <= 10000");
        }
        if self
            .reachable_shares
            .iter()
            .any(|s| !(0.01..=1.0).contains(s))
            || self.placement_nodes > 20_000
        {
            bail!("--reachable-shares take 0.01 to 1, --placement-nodes at most 20000");
        }
        let out = (!self.no_write).then(|| crate::provenance::from_root(&self.out));
        Ok(Settings {
            nodes: self.nodes,
            posts_per_node: self.posts_per_node,
            reply_share: self.reply_share,
            min_follows: self.min_follows,
            max_follows: self.max_follows,
            min_text: self.min_text,
            max_text: self.max_text,
            round_gap: Duration::from_millis(self.round_gap_ms),
            seed: self.seed,
            setup_timeout: Duration::from_secs(self.setup_timeout),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            settle: Duration::from_secs(self.settle_secs),
            placement_nodes: self.placement_nodes,
            reachable_shares: self.reachable_shares,
            out,
            command: crate::provenance::command_line("replica_load"),
        })
    }
}

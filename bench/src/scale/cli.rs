//! Command-line flags of the scale benchmark and the validated settings built from them
//! (raw flags → [`Settings`], passed down explicitly to every configuration).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};

/// Network scale: follow mode vs broadcast mode with N in-process starling nodes.
///
/// For each N, N nodes run in this process over libp2p's in-memory transport on a seeded
/// power-law follow graph; every node posts, and the run measures the delivery ratio, the
/// publish→stored latency at the followers and the bytes all nodes sent. Figures are
/// printed and written to `<out>.md` and `<out>.json`. Nothing is asserted.
#[derive(Debug, Clone, Parser)]
#[command(name = "scale", version)]
pub struct Args {
    /// Network sizes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 100, 200])]
    pub nodes: Vec<usize>,

    /// Kind-1 notes each node posts in the posting window.
    #[arg(long, default_value_t = 1)]
    pub posts_per_node: usize,

    /// Seed of the follow graph and the posting schedule.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Output path without extension (`.md` and `.json` are written); relative paths are
    /// taken from the workspace root.
    #[arg(long, default_value = "bench/results/scale")]
    pub out: PathBuf,

    /// Print only; write no result files.
    #[arg(long)]
    pub no_write: bool,

    /// Modes to run for each N, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [Mode::Follow, Mode::Broadcast])]
    pub modes: Vec<Mode>,

    /// Fewest authors each node follows.
    #[arg(long, default_value_t = 3)]
    pub min_follows: usize,

    /// Most authors each node follows.
    #[arg(long, default_value_t = 8)]
    pub max_follows: usize,

    /// Longest setup (nodes started, subscriptions in place) per configuration, seconds.
    #[arg(long, default_value_t = 60)]
    pub setup_timeout: u64,

    /// Longest settling after setup, seconds: the nodes settle until a 5.5 s span in
    /// which they send under 500 B/s each plus 20 B/s per connection end (the AutoNAT
    /// probes caused by setup's connections are over).
    #[arg(long, default_value_t = 60)]
    pub settle_timeout: u64,

    /// Longest wait for deliveries after the last post, seconds.
    #[arg(long, default_value_t = 30)]
    pub delivery_timeout: u64,

    /// Posts are spread over this many milliseconds (random offsets).
    #[arg(long, default_value_t = 2_000)]
    pub spread_ms: u64,
}

/// How posts travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Follow lists, home records in the DHT, subscriptions and pushes at the author.
    Follow,
    /// Every node on the gossipsub topic; every post floods to every node.
    Broadcast,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Follow => "follow",
            Mode::Broadcast => "broadcast",
        })
    }
}

/// Validated settings of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub nodes: Vec<usize>,
    pub modes: Vec<Mode>,
    pub posts_per_node: usize,
    pub seed: u64,
    pub min_follows: usize,
    pub max_follows: usize,
    pub setup_timeout: Duration,
    pub settle_timeout: Duration,
    pub delivery_timeout: Duration,
    pub spread: Duration,
    /// Output stem, `None` with `--no-write`.
    pub out: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

impl Args {
    pub fn resolve(self) -> Result<Settings> {
        if self.nodes.is_empty() || self.nodes.iter().any(|n| !(2..=1_000).contains(n)) {
            bail!("--nodes takes sizes from 2 to 1000");
        }
        if self.min_follows == 0 || self.min_follows > self.max_follows {
            bail!("need 1 <= --min-follows <= --max-follows");
        }
        if self.posts_per_node == 0 || self.posts_per_node > 100 {
            bail!("--posts-per-node takes 1 to 100");
        }
        let out = (!self.no_write).then(|| {
            if self.out.is_absolute() {
                self.out.clone()
            } else {
                workspace_root().join(&self.out)
            }
        });
        let mut modes = self.modes.clone();
        modes.dedup();
        Ok(Settings {
            nodes: self.nodes,
            modes,
            posts_per_node: self.posts_per_node,
            seed: self.seed,
            min_follows: self.min_follows,
            max_follows: self.max_follows,
            setup_timeout: Duration::from_secs(self.setup_timeout),
            settle_timeout: Duration::from_secs(self.settle_timeout),
            delivery_timeout: Duration::from_secs(self.delivery_timeout),
            spread: Duration::from_millis(self.spread_ms),
            out,
            command: command_line(),
        })
    }
}

/// Root of the cargo workspace this crate lives in (`bench/..`).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = "cargo run --release -p starling-bench --bin scale".to_owned();
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

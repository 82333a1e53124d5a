//! Command-line flags of the catch-up benchmark and the validated settings built from
//! them (raw flags → [`Settings`], passed down explicitly).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use serde::Serialize;

/// Catch-up after downtime: starling's reconciliation vs a naive since-fetch, same run.
///
/// A follower node R follows `--authors` authors and goes offline; they post
/// `--events-per-author` notes each; R comes back and catches up. Measured twice from the
/// same offline store: starling's own catch-up (R restarted), and a naive since-fetch of
/// every author from a home-set member (a copy of R's store on a node that follows
/// nobody). Reports seconds to in-sync and bytes sent by all nodes against the missing
/// events' JSON bytes. Nothing is asserted.
#[derive(Debug, Clone, Parser)]
#[command(name = "catchup", version)]
pub struct Args {
    /// Followed authors, each on its own node.
    #[arg(long, default_value_t = 100)]
    pub authors: usize,

    /// Notes each author posts while R is offline.
    #[arg(long, default_value_t = 100)]
    pub events_per_author: usize,

    /// Notes each author posts before R goes offline (R receives them live).
    #[arg(long, default_value_t = 5)]
    pub pre_events: usize,

    /// Nodes that neither post nor follow (node 0 is everyone's first bootstrap).
    #[arg(long, default_value_t = 3)]
    pub extra_nodes: usize,

    /// Hours of `created_at` the offline notes span (they are dated as if R had been away
    /// this long; the notes before it are older).
    #[arg(long, default_value_t = 48)]
    pub offline_hours: u64,

    /// Naive since-fetch: seconds before R's newest held note of an author it fetches from.
    #[arg(long, default_value_t = 600)]
    pub overlap_secs: u64,

    /// Naive since-fetch: events per fetch page.
    #[arg(long, default_value_t = 500)]
    pub page_limit: u32,

    /// Naive since-fetch: authors fetched at once (the follow task subscribes 16 at once).
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,

    /// Shortest note text, bytes.
    #[arg(long, default_value_t = 100)]
    pub min_text: usize,

    /// Longest note text, bytes.
    #[arg(long, default_value_t = 300)]
    pub max_text: usize,

    /// Seed of keys, note texts and bootstrap choices.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Longest network setup (nodes started, R subscribed to every author), seconds.
    #[arg(long, default_value_t = 240)]
    pub setup_timeout: u64,

    /// Longest wait for the offline notes to reach the home sets, seconds.
    #[arg(long, default_value_t = 240)]
    pub drain_timeout: u64,

    /// Longest settling before each measurement, seconds.
    #[arg(long, default_value_t = 40)]
    pub settle_timeout: u64,

    /// Span the background rate is measured over after settling, seconds (libp2p pings
    /// every connection each 60 s, and the connections made at setup ping in step).
    #[arg(long, default_value_t = 60)]
    pub background_secs: u64,

    /// Longest wait for a method to bring R in sync, seconds.
    #[arg(long, default_value_t = 120)]
    pub sync_timeout: u64,

    /// The whole run's deadline, seconds.
    #[arg(long, default_value_t = 1_500)]
    pub total_timeout: u64,

    /// Output file; relative paths are taken from the workspace root.
    #[arg(long, default_value = "bench/results/catchup.json")]
    pub out: PathBuf,

    /// Print only; write no result file.
    #[arg(long)]
    pub no_write: bool,
}

/// Validated settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub authors: usize,
    pub events_per_author: usize,
    pub pre_events: usize,
    pub extra_nodes: usize,
    pub offline_secs: u64,
    pub overlap_secs: u64,
    pub page_limit: u32,
    pub parallel: usize,
    pub min_text: usize,
    pub max_text: usize,
    pub seed: u64,
    pub setup_timeout: Duration,
    pub drain_timeout: Duration,
    pub settle_timeout: Duration,
    pub background_span: Duration,
    pub sync_timeout: Duration,
    pub total_timeout: Duration,
    /// Output file, `None` with `--no-write`.
    pub out: Option<PathBuf>,
    /// The command line, for the report.
    pub command: String,
}

impl Args {
    pub fn resolve(self) -> Result<Settings> {
        if !(1..=500).contains(&self.authors) {
            bail!("--authors takes 1 to 500");
        }
        if self.events_per_author == 0 || self.events_per_author > 5_000 {
            bail!("--events-per-author takes 1 to 5000");
        }
        if self.extra_nodes == 0 {
            bail!("--extra-nodes must be at least 1 (the bootstrap)");
        }
        if self.min_text == 0 || self.min_text > self.max_text || self.max_text > 10_000 {
            bail!("need 1 <= --min-text <= --max-text <= 10000");
        }
        if self.page_limit == 0 || self.page_limit > 500 || self.parallel == 0 {
            bail!(
                "--page-limit takes 1 to 500 (a node answers at most 500), --parallel at least 1"
            );
        }
        let out = (!self.no_write).then(|| crate::provenance::from_root(&self.out));
        Ok(Settings {
            authors: self.authors,
            events_per_author: self.events_per_author,
            pre_events: self.pre_events,
            extra_nodes: self.extra_nodes,
            offline_secs: self.offline_hours.max(1) * 3_600,
            overlap_secs: self.overlap_secs,
            page_limit: self.page_limit,
            parallel: self.parallel,
            min_text: self.min_text,
            max_text: self.max_text,
            seed: self.seed,
            setup_timeout: Duration::from_secs(self.setup_timeout),
            drain_timeout: Duration::from_secs(self.drain_timeout),
            settle_timeout: Duration::from_secs(self.settle_timeout),
            background_span: Duration::from_secs(self.background_secs.max(1)),
            sync_timeout: Duration::from_secs(self.sync_timeout),
            total_timeout: Duration::from_secs(self.total_timeout),
            out,
            command: crate::provenance::command_line("catchup"),
        })
    }
}

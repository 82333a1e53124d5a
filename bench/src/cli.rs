//! Command-line flags of the benchmark program, and the paths they default to.

use std::path::PathBuf;

use clap::Parser;

/// Root of the cargo workspace this crate lives in (`bench/..`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Ingest / query benchmark: starling vs nostr-rs-relay, side by side.
///
/// Measures the BIP340 verification ceiling of this machine, NIP-01 WebSocket
/// ingest over 1 and several connections, REQ→EOSE latency against a large
/// pre-filled store, and the node's resident memory. Figures are printed and
/// written to `bench/results/ingest-query.{md,json}`. Nothing is asserted.
#[derive(Debug, Clone, Parser)]
#[command(name = "starling-bench", version)]
pub struct Args {
    /// Quick development run: 5,000 ingest events, 50,000 store events,
    /// 500 queries, 2 s idle waits. Overrides the count flags below.
    #[arg(long)]
    pub quick: bool,

    /// Number of owner-signed kind-1 events published in each ingest run.
    #[arg(long, default_value_t = 50_000)]
    pub ingest_events: usize,

    /// Number of events (about 5,000 authors, kinds 0/1/3/6/7) in the store
    /// that REQ latency is measured against.
    #[arg(long, default_value_t = 1_000_000)]
    pub store_events: usize,

    /// Number of authors in the store corpus (power-law activity).
    #[arg(long, default_value_t = 5_000)]
    pub authors: usize,

    /// Number of REQ queries in the seeded mix (sent one after another).
    #[arg(long, default_value_t = 2_000)]
    pub queries: usize,

    /// Number of connections for the multi-connection ingest run.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,

    /// Unacknowledged EVENTs allowed in flight per connection.
    #[arg(long, default_value_t = 500)]
    pub window: usize,

    /// Connections used to pre-fill nostr-rs-relay's store over WebSocket.
    #[arg(long, default_value_t = 4)]
    pub prefill_conns: usize,

    /// Seed for every generated key, event and query (same seed → same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Seconds to let a node sit idle before reading its memory.
    #[arg(long, default_value_t = 5)]
    pub idle_secs: u64,

    /// Upper bound in seconds for any single phase (ingest run, pre-fill,
    /// query run); a phase that exceeds it is reported as failed.
    #[arg(long, default_value_t = 3_600)]
    pub phase_timeout_secs: u64,

    /// Path of the starling binary [default: <workspace>/target/release/starling].
    #[arg(long)]
    pub starling_bin: Option<PathBuf>,

    /// Path of the nostr-rs-relay binary [default: found on PATH or in
    /// ~/.cargo/bin].
    #[arg(long)]
    pub nrr_bin: Option<PathBuf>,

    /// Measure starling only, even when nostr-rs-relay is installed.
    #[arg(long)]
    pub skip_nrr: bool,

    /// Skip the starling runs (useful to measure nostr-rs-relay alone).
    #[arg(long)]
    pub skip_starling: bool,

    /// Directory caching generated events, keyed by count and seed
    /// [default: <workspace>/target/bench-data].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// Directory the results (ingest-query.md / .json) are written to
    /// [default: <workspace>/bench/results].
    #[arg(long)]
    pub results_dir: Option<PathBuf>,

    /// Do not write result files; only print.
    #[arg(long)]
    pub no_write: bool,
}

impl Args {
    /// Apply `--quick` and fill in defaulted paths.
    pub fn resolve(mut self) -> Self {
        if self.quick {
            self.ingest_events = 5_000;
            self.store_events = 50_000;
            self.queries = 500;
            self.idle_secs = 2;
        }
        let root = workspace_root();
        if self.starling_bin.is_none() {
            self.starling_bin = Some(root.join("target/release/starling"));
        }
        if self.cache_dir.is_none() {
            self.cache_dir = Some(root.join("target/bench-data"));
        }
        if self.results_dir.is_none() {
            self.results_dir = Some(root.join("bench/results"));
        }
        self.conns = self.conns.max(1);
        self.window = self.window.max(1);
        self.prefill_conns = self.prefill_conns.max(1);
        self
    }

    pub fn starling_bin(&self) -> PathBuf {
        self.starling_bin.clone().unwrap_or_default()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_default()
    }

    pub fn results_dir(&self) -> PathBuf {
        self.results_dir.clone().unwrap_or_default()
    }
}

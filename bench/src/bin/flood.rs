//! `flood`: honest delivery under a flood (issue 7). See `bench/src/flood/` for the
//! scenario. Run with `cargo run --release -p starling-bench --bin flood -- --help`; the
//! table is printed and the figures written to `bench/results/flood.json`. Nothing is
//! asserted.

#[path = "../flood/mod.rs"]
mod flood;
#[path = "../logging.rs"]
mod logging;
#[allow(dead_code)]
#[path = "../machine.rs"]
mod machine;
#[allow(dead_code)]
#[path = "../node.rs"]
mod node;
#[path = "../provenance.rs"]
mod provenance;
#[allow(dead_code)]
#[path = "../ws.rs"]
mod ws;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use flood::flooder;
use flood::honest;
use flood::pair::Pair;
use flood::report::{Report, Run, Summary};

#[derive(Debug, Parser)]
#[command(about = "Honest delivery latency with and without a flooding client, same run")]
struct Args {
    /// The starling binary (default: target/release/starling of this workspace).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Honest posts per phase.
    #[arg(long, default_value_t = 100)]
    posts: usize,
    /// Honest posts per second.
    #[arg(long, default_value_t = 5.0)]
    post_rate: f64,
    /// Junk EVENTs per second from the flooder, over all its connections.
    #[arg(long, default_value_t = 1000)]
    junk_rate: u64,
    /// REQs per second from the flooder.
    #[arg(long, default_value_t = 100)]
    req_rate: u64,
    /// WebSocket connections the flooder spreads its load over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Earlier notes A holds (imported before it starts): what the flooder's REQs read.
    #[arg(long, default_value_t = 2000)]
    notes: usize,
    /// Also run with the rate limits turned off, for comparison.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    compare_unlimited: bool,
    /// Where the JSON goes.
    #[arg(long, default_value = "bench/results/flood.json")]
    out: PathBuf,
}

async fn one(args: &Args, bin: &std::path::Path, limits_on: bool) -> Result<Run> {
    let dir = tempfile::Builder::new()
        .prefix("starling-bench-flood")
        .tempdir()?;
    let label = if limits_on { "on (defaults)" } else { "off" };
    eprintln!("flood: starting nodes A and B, limits {label}");
    let pair = Pair::start(bin, dir.path(), limits_on, args.notes).await?;
    let (a_url, b_url) = (pair.a.node.url.clone(), pair.b.node.url.clone());
    let keys = pair.a.keys.clone();
    eprintln!("flood: unloaded phase ({} posts)", args.posts);
    let (ua, ub) = honest::phase(&a_url, &b_url, &keys, args.posts, args.post_rate).await?;
    eprintln!("flood: flooded phase");
    let stop = CancellationToken::new();
    let flood = tokio::spawn(flooder::flood(
        a_url.clone(),
        "127.0.0.2".parse()?,
        args.connections,
        args.junk_rate,
        args.req_rate,
        stop.clone(),
    ));
    let started = Instant::now();
    // The flood runs a second before the honest posts start, so they meet it at full rate.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (fa, fb) = honest::phase(&a_url, &b_url, &keys, args.posts, args.post_rate).await?;
    stop.cancel();
    let counts = flood.await.context("flooder task")??;
    let flood_secs = started.elapsed().as_secs_f64();
    pair.stop().await?;
    let (ua_s, ub_s, fa_s, fb_s) = (
        Summary::of(&ua),
        Summary::of(&ub),
        Summary::of(&fa),
        Summary::of(&fb),
    );
    Ok(Run {
        limits: label,
        posts_per_phase: args.posts,
        unloaded_on_a: ua_s,
        unloaded_on_b: ub_s,
        flooded_on_a: fa_s,
        flooded_on_b: fb_s,
        honest_refused_flooded: fa.refused,
        flood: counts,
        flood_secs,
        ratio_p50_b: fb_s.p50_ms / ub_s.p50_ms,
        ratio_p50_a: fa_s.p50_ms / ua_s.p50_ms,
        ratio_p95_b: fb_s.p95_ms / ub_s.p95_ms,
    })
}

fn main() -> Result<()> {
    logging::init();
    let args = Args::parse();
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| provenance::from_root(std::path::Path::new("target/release/starling")));
    anyhow::ensure!(
        bin.is_file(),
        "no starling binary at {} (cargo build --release -p starling)",
        bin.display()
    );
    let provenance = provenance::Provenance::now(&provenance::command_line("flood"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut runs = vec![rt.block_on(one(&args, &bin, true))?];
    if args.compare_unlimited {
        runs.push(rt.block_on(one(&args, &bin, false))?);
    }
    let report = Report { provenance, runs };
    println!("\n{}", report.text());
    let out = provenance::from_root(&args.out);
    provenance::write_json(&out, &report)?;
    eprintln!("results written to {}", out.display());
    Ok(())
}

//! `churn`: the churn benchmark of issue 4. Runs the churn scenario of
//! `starling_net::sim::churn` at scale (100 nodes by default): every node follows others
//! at random and posts in rounds (notes, replies to followees' posts, mentions) while 30%
//! of the nodes, authors included, are killed (tasks aborted, as a crash) and restarted at
//! random rounds. Then every node is up again and the run waits until every event that
//! reached a home-set quorum is in every follower's store and every reply and mention in
//! its target's store, and reports what arrived, how long it took and the bytes sent.
//!
//! Run with `cargo run --release -p starling-bench --bin churn -- --help`. The report is
//! printed and written to `bench/results/churn.json`; nothing is asserted (the CI test
//! `cargo test -p starling-net --test churn` runs the same scenario small and asserts).

#[path = "../logging.rs"]
mod logging;
// Shared with the other benchmark binaries, which use more of it.
#[allow(dead_code)]
#[path = "../machine.rs"]
mod machine;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use serde::Serialize;
use starling_net::sim::churn::{self, ChurnConfig, ChurnReport};

/// The churn benchmark: N nodes, 30% killed and restarted while everyone posts.
#[derive(Debug, Parser)]
#[command(name = "churn", about)]
struct Args {
    /// Nodes in the network.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Authors each node follows.
    #[arg(long, default_value_t = 10)]
    follows: usize,
    /// Posting rounds (every node that is up posts once per round).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 2.0)]
    round_gap: f64,
    /// Share of nodes killed and restarted.
    #[arg(long, default_value_t = 0.3)]
    churn: f64,
    /// Rounds a killed node stays down, at most.
    #[arg(long, default_value_t = 3)]
    max_down_rounds: usize,
    /// Seconds to wait for every delivery once everyone is back, at most.
    #[arg(long, default_value_t = 300)]
    settle: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Replies whose sender is killed before their (killed) target returns.
    #[arg(long, default_value_t = 5)]
    orphan_replies: usize,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench/results/churn.json")]
    out: PathBuf,
}

#[derive(Serialize)]
struct Output {
    command: String,
    machine: machine::Machine,
    report: ChurnReport,
    delivered_share: f64,
}

fn main() -> Result<()> {
    logging::init();
    let args = Args::parse();
    let machine = machine::Machine::probe();
    let cfg = ChurnConfig {
        nodes: args.nodes,
        follows: args.follows,
        rounds: args.rounds,
        round_gap: Duration::from_secs_f64(args.round_gap),
        churn: args.churn,
        max_down_rounds: args.max_down_rounds,
        setup: Duration::from_secs(120),
        settle: Duration::from_secs(args.settle),
        orphan_replies: args.orphan_replies,
        seed: args.seed,
        memory_base: 5_000_000,
    };
    eprintln!(
        "churn: {cfg:?} on {} ({} cores)",
        machine.cpu, machine.cores
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix("starling-churn-")
        .tempdir()?;
    let report = rt.block_on(churn::run(&cfg, dir.path(), |line| eprintln!("  {line}")))?;
    rt.shutdown_timeout(Duration::from_secs(10));
    let delivered_share = if report.expected_deliveries == 0 {
        1.0
    } else {
        1.0 - report.missing_deliveries as f64 / report.expected_deliveries as f64
    };
    println!(
        "\nnodes {} (killed and restarted {}), follow edges {}, posts {}, quorum events {}",
        report.nodes, report.killed, report.follow_edges, report.posts, report.quorum_events
    );
    println!(
        "deliveries to followers: {} of {} ({:.2}%), missing {}",
        report.expected_deliveries - report.missing_deliveries,
        report.expected_deliveries,
        delivered_share * 100.0,
        report.missing_deliveries
    );
    println!(
        "replies and mentions: {} sent, {} while the target was down ({} with the sender down when the target returned), {} missing",
        report.replies_and_mentions,
        report.sent_while_target_down,
        report.sender_down_at_target_return,
        report.missing_replies
    );
    println!(
        "orphaned replies (sender down before the target returned): {} of {} arrived, the slowest {:.1} s after the target's restart",
        report.orphan_replies_arrived,
        report.orphan_replies,
        report.orphan_reply_max_secs.unwrap_or(f64::NAN)
    );
    match report.converged_secs {
        Some(s) => println!("converged {s:.1} s after the last restart"),
        None => println!(
            "NOT converged within {} s; examples: {:?}",
            args.settle, report.examples
        ),
    }
    println!(
        "setup {:.1} s, rounds {:.1} s, bytes sent by all nodes during rounds and settling: {:.1} MB",
        report.setup_secs,
        report.rounds_secs,
        report.bytes as f64 / 1e6
    );
    let output = Output {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        report,
        delivered_share,
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&output)?)?;
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

//! `replica_load`: the home-set load benchmark. N in-process nodes follow each other on a
//! seeded power-law graph and post notes and replies; once the network settled, every
//! node reports what it carries for others (authors it keeps as a home-set member, other
//! users' events and bytes, subscribers), and the run prints the distribution over nodes.
//!
//! Run with `cargo run --release -p starling-bench --bin replica_load -- --help`. The
//! tables are printed and every figure written to `bench/results/replica_load.json`;
//! nothing is asserted. The work itself lives in `bench/src/replica/`.

// Shared with the other benchmark binaries; only `filter` is used here (its log joins
// the request counter's layer).
#[allow(dead_code)]
#[path = "../logging.rs"]
mod logging;
// Shared with the ingest benchmark; only `note_text` is used here.
#[allow(dead_code)]
#[path = "../gen.rs"]
mod gen;
// Shared with the scale benchmark; not every item is used here.
#[allow(dead_code)]
#[path = "../scale/graph.rs"]
mod graph;
#[path = "../machine.rs"]
mod machine;
// Shared with the catch-up benchmark; not every helper is used here.
#[allow(dead_code)]
#[path = "../netsim.rs"]
mod netsim;
#[path = "../provenance.rs"]
mod provenance;
#[path = "../replica/mod.rs"]
mod replica;

use anyhow::Result;
use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::replica::cli::Args;
use crate::replica::report::Report;
use crate::replica::requests::Requests;

fn main() -> Result<()> {
    let requests = Requests::default();
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(logging::filter());
    tracing_subscriber::registry()
        .with(log)
        .with(requests.layer())
        .init();
    let settings = Args::parse().resolve()?;
    let mut report = Report::new(&settings);
    eprintln!(
        "replica_load: {} nodes, {} posts each ({:.0}% replies), seed {}; {}",
        settings.nodes,
        settings.posts_per_node,
        settings.reply_share * 100.0,
        settings.seed,
        report.provenance.describe()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(replica::run::run(&settings, &requests, &mut report));
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    report.summarise();
    println!("\n{}", report.text());
    if let Some(out) = &settings.out {
        provenance::write_json(out, &report)?;
        eprintln!("results written to {}", out.display());
    }
    Ok(())
}

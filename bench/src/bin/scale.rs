//! `scale`: the network-scale benchmark. Runs N in-process starling nodes (50, 100, 200 by
//! default) over libp2p's in-memory transport on a seeded power-law follow graph, has every
//! node post, and measures delivery ratio, delivery latency and bytes sent, in follow mode
//! and in broadcast mode (gossipsub flooding, the NostrP2P-like baseline) in the same run.
//!
//! Run with `cargo run --release -p starling-bench --bin scale -- --help`. Tables are
//! printed and written to `bench/results/scale.{md,json}`; nothing is asserted. The work
//! itself lives in `bench/src/scale/` (see its module docs).

#[path = "../logging.rs"]
mod logging;
#[path = "../machine.rs"]
mod machine;
// Shared with the catch-up and replica-load benchmarks, which use more of it.
#[allow(dead_code)]
#[path = "../netsim.rs"]
mod netsim;
#[path = "../scale/mod.rs"]
mod scale;

use anyhow::Result;
use clap::Parser;

use crate::scale::cli::Args;
use crate::scale::report::{self, Report};
use crate::scale::run;
use crate::scale::sys::Machine;

fn main() -> Result<()> {
    logging::init();
    let settings = Args::parse().resolve()?;
    let machine = Machine::probe();
    eprintln!(
        "scale: nodes {:?}, {} post(s) per node, seed {}, on {} ({} cores)",
        settings.nodes, settings.posts_per_node, settings.seed, machine.cpu, machine.cores
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runs = rt.block_on(run::all(&settings));
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    let report = Report::new(&settings, machine, runs);
    let markdown = report::markdown(&report);
    println!("\n{markdown}");
    if let Some(out) = &settings.out {
        report::write(out, &report, &markdown)?;
        eprintln!(
            "results written to {} and .json",
            out.with_extension("md").display()
        );
    }
    Ok(())
}

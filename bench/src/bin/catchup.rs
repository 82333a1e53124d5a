//! `catchup`: the catch-up benchmark. A follower node is offline while its followees
//! post; on return it catches up, once with starling's own reconciliation and once with
//! a naive since-fetch from the same offline store, and the run reports seconds to
//! in-sync and bytes transferred against the missing events' JSON bytes.
//!
//! Run with `cargo run --release -p starling-bench --bin catchup -- --help`. The table is
//! printed and the figures written to `bench/results/catchup.json`; nothing is asserted.
//! The work itself lives in `bench/src/catchup/` (see its module docs).

#[path = "../catchup/mod.rs"]
mod catchup;
#[path = "../logging.rs"]
mod logging;
// Shared with the ingest benchmark; only `note_text` is used here.
#[allow(dead_code)]
#[path = "../gen.rs"]
mod gen;
#[path = "../machine.rs"]
mod machine;
#[path = "../netsim.rs"]
mod netsim;
#[path = "../provenance.rs"]
mod provenance;

use anyhow::Result;
use clap::Parser;

use crate::catchup::cli::Args;
use crate::catchup::report::Report;

fn main() -> Result<()> {
    logging::init();
    let settings = Args::parse().resolve()?;
    let mut report = Report::new(&settings);
    eprintln!(
        "catchup: {} authors × {} notes offline ({} before), seed {}; {}",
        settings.authors,
        settings.events_per_author,
        settings.pre_events,
        settings.seed,
        report.provenance.describe()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(catchup::run::run(&settings, &mut report));
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    report.judge();
    println!("\n{}", report.text());
    if let Some(out) = &settings.out {
        provenance::write_json(out, &report)?;
        eprintln!("results written to {}", out.display());
    }
    Ok(())
}

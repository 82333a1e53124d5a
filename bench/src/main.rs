//! `starling-bench`: ingest and query benchmark for the starling node, with
//! nostr-rs-relay measured side by side when it is installed.
//!
//! Run with `cargo run --release -p starling-bench -- --help`. Figures are
//! printed and written to `bench/results/ingest-query.{md,json}`; nothing is
//! asserted.

mod cache;
mod cli;
mod corpus;
mod gen;
mod ingest;
mod machine;
mod mix;
mod node;
mod query;
mod report;
mod runner;
mod tables;
mod targets;
mod verify;
mod ws;

use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::cli::Args;
use crate::mix::Query;
use crate::report::{Machine, Report, Settings};
use crate::runner::Workload;
use crate::targets::Target;

/// Generated inputs shared by every relay.
struct Inputs {
    ingest: Vec<String>,
    store: Vec<String>,
    store_file: std::path::PathBuf,
    queries: Vec<Query>,
}

fn main() -> Result<()> {
    let args = Args::parse().resolve();
    let machine = Machine::probe();
    let inputs = prepare(&args)?;
    eprintln!("== verification ceiling ==");
    let mut notes = Vec::new();
    let ceiling = match verify::measure(&inputs.ingest) {
        Ok(c) => {
            eprintln!(
                "  single thread {:.0} events/s; {} threads {:.0} events/s",
                c.single_thread_eps, c.threads, c.all_cores_eps
            );
            Some(c)
        }
        Err(e) => {
            notes.push(format!("verification ceiling failed: {e:#}"));
            None
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = rt.block_on(measure_relays(&args, &inputs, notes))?;
    report.ceiling = ceiling;
    report.machine = machine;
    let markdown = report::markdown(&report);
    println!("\n{markdown}");
    if !args.no_write {
        report::write(&args.results_dir(), &report, &markdown)?;
        eprintln!(
            "results written to {}",
            args.results_dir().join("ingest-query.md").display()
        );
    }
    Ok(())
}

/// Sign (or load from cache) the ingest and store event sets; build the mix.
fn prepare(args: &Args) -> Result<Inputs> {
    eprintln!(
        "== preparing events (cache: {}) ==",
        args.cache_dir().display()
    );
    let dir = args.cache_dir();
    let (ingest, _) =
        cache::load_or_generate(&dir, "ingest", args.ingest_events, args.seed, || {
            gen::ingest_events(args.seed, args.ingest_events)
        })?;
    let name = format!("store-{}authors", args.authors);
    let (store, store_file) =
        cache::load_or_generate(&dir, &name, args.store_events, args.seed, || {
            corpus::generate(args.seed, args.store_events, args.authors)
        })?;
    let meta = cache::summarise(&store)?;
    let queries = mix::build(&meta, args.queries, args.seed)?;
    Ok(Inputs {
        ingest,
        store,
        store_file,
        queries,
    })
}

/// Run every phase on starling and (if installed) nostr-rs-relay.
async fn measure_relays(args: &Args, inputs: &Inputs, mut notes: Vec<String>) -> Result<Report> {
    let work = Workload {
        ingest: &inputs.ingest,
        store: &inputs.store,
        store_file: &inputs.store_file,
        queries: &inputs.queries,
        conns: args.conns,
        window: args.window,
        prefill_conns: args.prefill_conns,
        idle: Duration::from_secs(args.idle_secs),
        limit: Duration::from_secs(args.phase_timeout_secs),
    };
    let starling = if args.skip_starling {
        None
    } else if !args.starling_bin().is_file() {
        let msg = format!(
            "starling binary not found at {} (build it with `cargo build --release -p starling`); starling not measured",
            args.starling_bin().display()
        );
        eprintln!("!! {msg}");
        notes.push(msg);
        None
    } else {
        let target = Target::starling(args.starling_bin(), &gen::owner_keys(args.seed)?)?;
        Some(runner::run(&target, &work).await)
    };
    let (nrr, nrr_note) = match (args.skip_nrr, targets::find_nrr(args.nrr_bin.as_deref())) {
        (true, _) => (None, "skipped (--skip-nrr)".to_owned()),
        (false, None) => {
            eprintln!("!! nostr-rs-relay is NOT installed (not on PATH nor in ~/.cargo/bin): measuring starling only");
            (None, "not installed; not measured".to_owned())
        }
        (false, Some(bin)) => {
            let note = format!("{} ({})", bin.display(), nrr_version(&bin).await);
            (Some(runner::run(&Target::Nrr { bin }, &work).await), note)
        }
    };
    let mismatches = match (
        starling.as_ref().and_then(|t| t.query.as_ref()),
        nrr.as_ref().and_then(|t| t.query.as_ref()),
    ) {
        (Some(a), Some(b)) => Some(query::mismatches(a, b)),
        _ => None,
    };
    Ok(Report {
        date: report::now_text(),
        command: command_line(),
        machine: Machine::probe(),
        settings: settings(args),
        ceiling: None,
        starling,
        nrr,
        nrr_note,
        starling_note: report::starling_note(&args.starling_bin()),
        query_count_mismatches: mismatches,
        notes,
    })
}

fn settings(args: &Args) -> Settings {
    Settings {
        ingest_events: args.ingest_events,
        store_events: args.store_events,
        authors: args.authors,
        queries: args.queries,
        conns: args.conns,
        window: args.window,
        seed: args.seed,
    }
}

/// How this run was invoked, as a cargo command.
fn command_line() -> String {
    let rest: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = "cargo run --release -p starling-bench --".to_owned();
    for a in rest {
        cmd.push(' ');
        cmd.push_str(&a);
    }
    cmd
}

async fn nrr_version(bin: &std::path::Path) -> String {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--version");
    match node::run_command(&mut cmd, Duration::from_secs(10)).await {
        Ok(v) => v.trim().to_owned(),
        Err(_) => "version unknown".into(),
    }
}

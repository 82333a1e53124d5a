//! `starling import`: reads NIP-01 events from a JSONL file and stores them through the
//! ingest path (validated like any other event, any author), with a progress bar.

use std::io::{BufRead, BufReader};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use starling_core::{EventBus, Ingest, Origin};
use starling_proto::Event;
use starling_store::StoreOptions;

use crate::args::ImportArgs;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::store::NodeStore;

/// Events validated and committed together.
const CHUNK: usize = 2000;

#[derive(Default)]
struct Tally {
    stored: u64,
    duplicate: u64,
    refused: u64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir)?;
    anyhow::ensure!(
        dir.is_initialized(),
        "{} holds no node; run `starling init` first",
        dir.path().display()
    );
    let settings = Config::load(&dir.config())?.validate(None)?;
    let owner = dir.owner()?.public_key();
    let options = StoreOptions {
        max_bytes: settings.max_bytes,
        protected_authors: vec![owner],
    };
    let store = NodeStore::open(&dir, &settings.store, options).await?;
    let ingest = Ingest::new(store.shared(), EventBus::new(), owner, settings.limits);

    let (reader, total): (Box<dyn BufRead>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(BufReader::new(std::io::stdin())), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let len = file.metadata()?.len();
        (Box::new(BufReader::new(file)), Some(len))
    };
    let bar = match total {
        Some(len) => ProgressBar::new(len).with_style(ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}",
        )?),
        None => ProgressBar::new_spinner(),
    };
    let mut tally = Tally::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("reading the input")?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(event) => chunk.push(event),
            Err(e) => {
                tally.refused += 1;
                bar.println(format!("line {}: not an event: {e}", n + 1));
            }
        }
        if chunk.len() == CHUNK {
            flush(&ingest, &mut chunk, &mut tally, &bar).await;
        }
    }
    flush(&ingest, &mut chunk, &mut tally, &bar).await;
    bar.finish_and_clear();
    store.shutdown().await;
    println!(
        "imported: {} stored, {} already present, {} refused",
        tally.stored, tally.duplicate, tally.refused
    );
    Ok(())
}

async fn flush(ingest: &Ingest, chunk: &mut Vec<Event>, tally: &mut Tally, bar: &ProgressBar) {
    let events = std::mem::take(chunk);
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    for (id, result) in ids
        .into_iter()
        .zip(ingest.submit_many(events, Origin::Import).await)
    {
        match result {
            Ok(ack) if ack.duplicate => tally.duplicate += 1,
            Ok(_) => tally.stored += 1,
            Err(e) => {
                tally.refused += 1;
                bar.println(format!("event {id}: {e}"));
            }
        }
    }
    bar.set_message(format!("{} stored", tally.stored));
}

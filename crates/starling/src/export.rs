//! `starling export`: writes stored events as NIP-01 JSONL (one event per line, exactly the
//! JSON text the store keeps), newest first, with a progress bar on stderr when the output
//! is a file. It opens the store directly ([`NodeStore::open_for_reading`]): SQLite
//! read-only, whose WAL lets it read while a node runs on the same data directory without
//! blocking the node's writer; or the PostgreSQL database that config.toml names.

use std::io::{BufWriter, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use starling_proto::{EventId, Filter, Kind, Timestamp};
use starling_store::{EventKey, EventStore};

use crate::args::ExportArgs;
use crate::config::Config;
use crate::datadir::{parse_npub, DataDir};
use crate::store::NodeStore;

/// Events read from the store per query.
const PAGE: usize = 500;
/// No cap on the events one export lists (SQLite's `LIMIT` takes an i64).
const MAX_EVENTS: usize = i64::MAX as usize;

/// The filter `args` select: authors, kinds, since and until.
fn selection(args: &ExportArgs) -> anyhow::Result<Filter> {
    let mut filter = Filter::new();
    if !args.author.is_empty() {
        let authors = args
            .author
            .iter()
            .map(|a| parse_npub(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        filter = filter.authors(authors);
    }
    if !args.kinds.is_empty() {
        filter = filter.kinds(args.kinds.iter().map(|k| Kind::from(*k)));
    }
    if let Some(since) = args.since {
        filter = filter.since(Timestamp::from(since));
    }
    if let Some(until) = args.until {
        filter = filter.until(Timestamp::from(until));
    }
    Ok(filter)
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir.clone())?;
    anyhow::ensure!(
        dir.is_initialized(),
        "{} holds no node; run `starling init` first",
        dir.path().display()
    );
    let filter = selection(&args)?;
    let settings = Config::load(&dir.config())?.validate(None)?;
    let Some(opened) = NodeStore::open_for_reading(&dir, &settings.store).await? else {
        eprintln!(
            "exported 0 events: {} has never stored any",
            dir.path().display()
        );
        return Ok(());
    };
    let store = opened.shared();
    let keys = store.keys(vec![filter], MAX_EVENTS).await?;
    let to_stdout = args.out.as_os_str() == "-";
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        Box::new(BufWriter::new(file))
    };
    let bar = if to_stdout {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(keys.len() as u64).with_style(ProgressStyle::with_template(
            "{bar:40} {pos}/{len} events {per_sec} eta {eta}",
        )?)
    };
    let written = write_events(&*store, &keys, &mut out, &bar).await?;
    out.flush().context("writing the output")?;
    bar.finish_and_clear();
    opened.shutdown().await;
    let target = if to_stdout {
        "standard output".to_string()
    } else {
        args.out.display().to_string()
    };
    eprintln!("exported {written} events to {target}");
    Ok(())
}

/// Writes the events of `keys` (newest first) a page at a time; returns how many. An event
/// deleted or replaced since the keys were listed is skipped.
async fn write_events(
    store: &dyn EventStore,
    keys: &[EventKey],
    out: &mut dyn Write,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut written = 0;
    for page in keys.chunks(PAGE) {
        let ids = page.iter().map(|k| EventId::from_byte_array(k.id));
        let filter = Filter::new().ids(ids).limit(page.len());
        for json in store.query_json(vec![filter]).await? {
            out.write_all(json.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .context("writing the output")?;
            written += 1;
        }
        bar.inc(page.len() as u64);
    }
    Ok(written)
}

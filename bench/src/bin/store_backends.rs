//! `store_backends`: saving N events into each store backend, SQLite and PostgreSQL, two
//! ways: one `save_many` call (import, sync), and N concurrent `save` calls from a bounded
//! set of tasks (many clients publishing at once; the writers batch them into few
//! commits). Prints events per second for each; nothing is asserted.
//!
//! Run with `cargo run -p starling-bench --bin store_backends -- --postgres-url URL`
//! (or STARLING_TEST_POSTGRES set, as scripts/test's postgres stage sets it). Each
//! PostgreSQL run works in a fresh schema, dropped afterwards.

#[path = "../logging.rs"]
mod logging;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, RenderedEvent, Tag, Timestamp};
use starling_store::postgres::PostgresConfig;
use starling_store::{EventStore, PostgresStore, SqliteStore, StoreOptions};
use tokio::task::JoinSet;

#[derive(Parser)]
struct Args {
    /// Events saved in each run.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Tasks calling `save` at once in the concurrent runs.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
    /// The PostgreSQL server (URL or key=value string).
    #[arg(long, env = "STARLING_TEST_POSTGRES")]
    postgres_url: String,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

/// N text notes by 50 authors, each with a `p` and a `t` tag, as a store takes them.
fn corpus(n: usize) -> Vec<Arc<RenderedEvent>> {
    let authors: Vec<Keys> = (0..50).map(|_| Keys::generate()).collect();
    (0..n)
        .map(|i| {
            let keys = &authors[i % authors.len()];
            let other = authors[(i + 1) % authors.len()].public_key();
            let event = EventBuilder::new(
                Kind::TextNote,
                format!("bench note {i} {}", "x".repeat(120)),
            )
            .tags([Tag::public_key(other), Tag::hashtag(format!("t{}", i % 20))])
            .custom_created_at(Timestamp::from_secs(1_700_000_000 + i as u64))
            .finalize(keys)
            .expect("sign");
            Arc::new(RenderedEvent::new(event))
        })
        .collect()
}

async fn save_many(store: &dyn EventStore, events: &[Arc<RenderedEvent>]) -> Result<()> {
    store.save_many(events.to_vec()).await?;
    Ok(())
}

async fn save_concurrently(
    store: Arc<dyn EventStore>,
    events: &[Arc<RenderedEvent>],
    tasks: usize,
) -> Result<()> {
    let per_task = events.len().div_ceil(tasks.max(1));
    let mut set = JoinSet::new();
    for chunk in events.chunks(per_task) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        set.spawn(async move {
            for event in chunk {
                store.save(event).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(())
}

/// A fresh schema on the server, with the settings that use it.
async fn fresh_schema(url: &str, name: &str) -> Result<PostgresConfig> {
    admin(
        url,
        &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
    )
    .await?;
    let mut config: PostgresConfig = url.parse().context("--postgres-url")?;
    config.options(format!("-c search_path={name}"));
    Ok(config)
}

async fn admin(url: &str, sql: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let io = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = io.await;
    Ok(())
}

async fn open(
    backend: &str,
    url: &str,
    run: &str,
) -> Result<(Arc<dyn EventStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> = match backend {
        "sqlite" => Arc::new(SqliteStore::open(
            &dir.path().join("events.db"),
            StoreOptions::default(),
        )?),
        _ => {
            let config = fresh_schema(url, &format!("bench_{run}")).await?;
            Arc::new(PostgresStore::open_with(config, StoreOptions::default()).await?)
        }
    };
    Ok((store, dir))
}

#[tokio::main]
async fn main() -> Result<()> {
    logging::init();
    let args = Args::parse();
    let events = corpus(args.events);
    let limit = Duration::from_secs(args.timeout_secs);
    println!(
        "{} events, {} saving tasks, build: {}",
        args.events,
        args.tasks,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "{:<10} {:<22} {:>10} {:>12}",
        "backend", "how", "seconds", "events/s"
    );
    for backend in ["sqlite", "postgres"] {
        for how in ["save_many", "save (concurrent)"] {
            let run = if how == "save_many" { "many" } else { "each" };
            let (store, _dir) = open(backend, &args.postgres_url, run).await?;
            let start = Instant::now();
            let work = async {
                if how == "save_many" {
                    save_many(&*store, &events).await
                } else {
                    save_concurrently(store.clone(), &events, args.tasks).await
                }
            };
            tokio::time::timeout(limit, work)
                .await
                .context("run timed out")??;
            let secs = start.elapsed().as_secs_f64();
            let stored = store.stats().await?.events;
            anyhow::ensure!(
                stored as usize == events.len(),
                "{backend}: stored {stored} of {}",
                events.len()
            );
            println!(
                "{backend:<10} {how:<22} {secs:>10.2} {:>12.0}",
                events.len() as f64 / secs
            );
            if backend == "postgres" {
                admin(
                    &args.postgres_url,
                    &format!("DROP SCHEMA bench_{run} CASCADE"),
                )
                .await?;
            }
        }
    }
    Ok(())
}

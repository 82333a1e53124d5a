//! `starling run`: opens the store, builds the node core and the client API, serves until
//! Ctrl-C or SIGTERM, then shuts down in order: stop accepting, end sessions, finish
//! queued writes, checkpoint the database.

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use starling_api::ApiState;
use starling_core::{EventBus, Ingest};
use starling_proto::{Timestamp, ToBech32};
use starling_store::{EventStore, SqliteStore, StoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::args::RunArgs;
use crate::config::Config;
use crate::datadir::{DataDir, OwnerKey};

/// How long open connections get to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(5);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir)?;
    if !dir.is_initialized() {
        let owner = dir.init(None, "127.0.0.1:7777")?;
        println!("initialized a new node in {}", dir.path().display());
        println!(
            "  new owner key {} (secret in owner.nsec)",
            owner.public_key().to_bech32()?
        );
    }
    let settings = Config::load(&dir.config())?.validate(args.api.as_deref())?;
    let owner = dir.owner()?;
    let owner_pk = owner.public_key();

    let options = StoreOptions {
        max_bytes: settings.max_bytes,
        protected_authors: vec![owner_pk],
    };
    let store = Arc::new(SqliteStore::open(&dir.events_db(), options)?);
    let bus = EventBus::new();
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        bus.clone(),
        owner_pk,
        settings.limits.clone(),
    ));
    let shutdown = CancellationToken::new();
    let state = Arc::new(ApiState {
        ingest,
        store: store.clone(),
        bus,
        owner: owner_pk,
        limits: settings.limits.clone(),
        name: settings.name.clone(),
        started: Instant::now(),
        shutdown: shutdown.clone(),
        connections: AtomicUsize::new(0),
    });

    let listener = TcpListener::bind(settings.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.api_listen))?;
    let addr = listener.local_addr()?;
    std::fs::write(dir.api_addr(), addr.to_string())?;
    print_banner(&dir, &owner, addr, store.stats().await?.events)?;
    info!(%addr, data_dir = %dir.path().display(), "node running");

    let expiry = tokio::spawn(expire_loop(
        store.clone(),
        settings.expire_every_secs,
        shutdown.clone(),
    ));
    let server = tokio::spawn(starling_api::serve(listener, state));
    wait_for_signal().await;
    info!("shutting down");
    shutdown.cancel();
    match tokio::time::timeout(DRAIN, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "API server ended with an error"),
        Ok(Err(e)) => warn!(error = %e, "API server task failed"),
        Err(_) => warn!("connections did not close within {DRAIN:?}; closing anyway"),
    }
    let _ = expiry.await;
    store.shutdown().await;
    let _ = std::fs::remove_file(dir.api_addr());
    info!("stopped cleanly");
    Ok(())
}

fn print_banner(
    dir: &DataDir,
    owner: &OwnerKey,
    addr: std::net::SocketAddr,
    events: u64,
) -> anyhow::Result<()> {
    let signing = match owner {
        OwnerKey::Secret(_) => "holds the owner's key: the CLI can sign",
        OwnerKey::Public(_) => "holds only the owner's npub: sign elsewhere",
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "starling {} node running", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        out,
        "  owner   {} ({signing})",
        owner.public_key().to_bech32()?
    )?;
    writeln!(out, "  relay   ws://{addr}")?;
    writeln!(out, "  rest    http://{addr}/publish  http://{addr}/req")?;
    writeln!(out, "  status  http://{addr}/api/status")?;
    writeln!(
        out,
        "  data    {} ({events} events stored)",
        dir.path().display()
    )?;
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Removes expired events every `every_secs` until shutdown.
async fn expire_loop(store: Arc<SqliteStore>, every_secs: u64, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_secs));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => match store.remove_expired(Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => info!(events = n, "removed expired events"),
                Err(e) => warn!(error = %e, "could not remove expired events"),
            },
        }
    }
}

//! `starling run`: opens the store, builds the node core and the client API, serves until
//! Ctrl-C or SIGTERM, then shuts down in order: stop accepting, end sessions, finish
//! queued writes, checkpoint the database. The store is SQLite or PostgreSQL as
//! `[store]` in config.toml says ([`NodeStore`]).

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use starling_api::tls::TlsSettings;
use starling_api::{ApiState, Exposure, WebState};
use starling_core::{EventBus, Ingest};
use starling_net::{NetNode, Network, NodeParts};
use starling_proto::{Timestamp, ToBech32};
use starling_store::{EventStore, StoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::args::RunArgs;
use crate::config::{ApiTransport, Config};
use crate::datadir::{DataDir, OwnerKey};
use crate::netconfig::NetworkFlags;
use crate::store::NodeStore;

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
    let transport = settings.api_transport(dir.path())?;
    let tls = match &transport {
        ApiTransport::Tls { cert, key } => Some(
            TlsSettings::load(cert, key)
                .context("cannot serve the API over TLS: check [api] tls_cert and tls_key")?,
        ),
        ApiTransport::Loopback | ApiTransport::BehindProxy => None,
    };
    let owner = dir.owner()?;
    let owner_pk = owner.public_key();
    let web = WebState::new(
        match &owner {
            OwnerKey::Secret(keys) => Some(keys.clone()),
            OwnerKey::Public(_) => None,
        },
        Some(&dir.web_token()?),
    );

    let options = StoreOptions {
        max_bytes: settings.max_bytes,
        protected_authors: vec![owner_pk],
    };
    let opened = NodeStore::open(&dir, &settings.store, options).await?;
    let store = opened.shared();
    let bus = EventBus::new();
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        bus.clone(),
        owner_pk,
        settings.limits.clone(),
    ));
    let shutdown = CancellationToken::new();
    let net = if args.offline || !settings.network.enabled {
        info!("peer-to-peer network disabled: local relay only");
        None
    } else {
        let flags = NetworkFlags {
            listen: args.net.listen.clone(),
            bootstrap: args.net.bootstrap.clone(),
            public: args.net.public,
            broadcast: args.net.broadcast,
        };
        let parts = NodeParts {
            settings: settings.network.settings(&flags)?,
            node_key: dir.node_keypair()?,
            owner: owner_pk,
            owner_keys: match &owner {
                OwnerKey::Secret(keys) => Some(keys.clone()),
                OwnerKey::Public(_) => None,
            },
            outbox_path: dir.outbox_db(),
            ingest: ingest.clone(),
            store: store.clone(),
            bus: bus.clone(),
        };
        Some(
            NetNode::start(parts, shutdown.clone())
                .await
                .context("cannot start the peer-to-peer network")?,
        )
    };
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
        subscriptions: AtomicUsize::new(0),
        remote: net
            .as_ref()
            .map(|n| n.remote.clone() as Arc<dyn starling_core::Remote>),
        web,
        limiter: starling_api::Limiter::new(settings.rate.clone()),
        exposure: match transport {
            ApiTransport::Loopback => Exposure::Loopback,
            ApiTransport::Tls { .. } | ApiTransport::BehindProxy => Exposure::Exposed,
        },
    });

    let listener = TcpListener::bind(settings.api_listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.api_listen))?;
    let addr = listener.local_addr()?;
    // Only the CLI's convenience: a node whose disk is full still serves.
    if let Err(e) = std::fs::write(dir.api_addr(), addr.to_string()) {
        warn!(error = %e, path = %dir.api_addr().display(),
            "cannot write the API address file; CLI commands then need --api {addr}");
    }
    let p2p = match &net {
        Some(n) => Some(p2p_line(n.network()).await),
        None => None,
    };
    let banner = Banner {
        addr,
        tls: tls.as_ref().map(|t| t.fingerprint().to_owned()),
        exposed: state.exposure == Exposure::Exposed,
        events: store.stats().await?.events,
        p2p,
    };
    print_banner(&dir, &owner, &banner)?;
    info!(%addr, data_dir = %dir.path().display(), "node running");

    let expiry = tokio::spawn(expire_loop(
        store.clone(),
        settings.expire_every_secs,
        shutdown.clone(),
    ));
    let server = match tls {
        Some(tls) => {
            tokio::spawn(async move { starling_api::serve_tls(listener, &tls, state).await })
        }
        None => tokio::spawn(starling_api::serve(listener, state)),
    };
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
    if let Some(net) = net {
        net.stop().await;
    }
    opened.shutdown().await;
    let _ = std::fs::remove_file(dir.api_addr());
    info!("stopped cleanly");
    Ok(())
}

/// What the start-up banner shows besides the data directory and owner.
struct Banner {
    addr: std::net::SocketAddr,
    /// The TLS certificate's fingerprint, when the API is served over TLS.
    tls: Option<String>,
    /// Whether other machines can reach the API.
    exposed: bool,
    events: u64,
    p2p: Option<String>,
}

fn print_banner(dir: &DataDir, owner: &OwnerKey, banner: &Banner) -> anyhow::Result<()> {
    let addr = banner.addr;
    let (ws, http) = match banner.tls {
        Some(_) => ("wss", "https"),
        None => ("ws", "http"),
    };
    let signing = match owner {
        OwnerKey::Secret(_) => "holds the owner's key: the CLI and the web client can sign",
        OwnerKey::Public(_) => {
            "holds only the owner's npub: sign elsewhere (NIP-07 in the web client)"
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "starling {} node running", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        out,
        "  owner   {} ({signing})",
        owner.public_key().to_bech32()?
    )?;
    writeln!(out, "  relay   {ws}://{addr}")?;
    writeln!(
        out,
        "  rest    {http}://{addr}/publish  {http}://{addr}/req"
    )?;
    writeln!(out, "  status  {http}://{addr}/api/status")?;
    writeln!(out, "  web     {http}://{addr}/")?;
    if let Some(fingerprint) = &banner.tls {
        writeln!(out, "  tls     certificate sha256 {fingerprint}")?;
    }
    if banner.exposed {
        writeln!(
            out,
            "  login   other devices log in with the token in {}",
            dir.web_token_path().display()
        )?;
        writeln!(
            out,
            "  auth    other machines publish only after NIP-42 AUTH as the owner \
             (REST: that token as a bearer token)"
        )?;
    }
    match &banner.p2p {
        Some(line) => writeln!(out, "  p2p     {line}")?,
        None => writeln!(out, "  p2p     off (local relay only)")?,
    }
    writeln!(
        out,
        "  data    {} ({} events stored)",
        dir.path().display(),
        banner.events
    )?;
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()?;
    Ok(())
}

/// The node's PeerId and listen addresses, once the listeners are up (or after a second).
pub async fn p2p_line(net: &Network) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = net.status().await.ok();
        let addrs: Vec<String> = status.map(|s| s.listen_addrs).unwrap_or_default();
        if !addrs.is_empty() || Instant::now() >= deadline {
            let peer = net.peer_id();
            let shown: Vec<String> = addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect();
            return if shown.is_empty() {
                format!("{peer} (no listen address yet)")
            } else {
                shown.join("  ")
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_signal() {
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
async fn expire_loop(store: Arc<dyn EventStore>, every_secs: u64, shutdown: CancellationToken) {
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

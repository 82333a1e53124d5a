//! One in-process starling node as the benchmark runs it: a SQLite store in its own
//! directory, the node core (bus and ingest path) and the full network layer listening on a
//! `/memory/N` address, with the byte counter of its memory connections. Started and
//! stopped by `cluster`; posts go through [`SimNode::publish`], the owner's own path.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use starling_core::{EventBus, Ingest, Origin};
use starling_net::libp2p::identity::Keypair;
use starling_net::libp2p::Multiaddr;
use starling_net::{NetNode, NetSettings, NodeParts, Traffic};
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Limits};
use starling_store::{EventStore, SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;

/// A running node.
pub struct SimNode {
    pub keys: Keys,
    pub net: NetNode,
    pub store: Arc<SqliteStore>,
    pub ingest: Arc<Ingest>,
    pub bus: EventBus,
    pub traffic: Traffic,
}

/// How a node is started.
pub struct NodeConfig<'a> {
    pub dir: &'a Path,
    pub listen: Multiaddr,
    pub bootstrap: Option<Multiaddr>,
    pub broadcast: bool,
    pub keys: Keys,
}

impl SimNode {
    pub async fn start(config: NodeConfig<'_>) -> Result<SimNode> {
        std::fs::create_dir_all(config.dir)?;
        let keys = config.keys;
        let store = Arc::new(
            SqliteStore::open(&config.dir.join("events.db"), StoreOptions::default())
                .context("opening a node's store")?,
        );
        let bus = EventBus::new();
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            bus.clone(),
            keys.public_key(),
            Limits::default(),
        ));
        let settings = NetSettings {
            listen: vec![config.listen],
            bootstrap: config.bootstrap.into_iter().collect(),
            // Memory addresses cannot be checked by AutoNAT: take them as reachable.
            public: true,
            broadcast: config.broadcast,
            ..NetSettings::default()
        };
        let traffic = settings.memory_traffic.clone();
        let parts = NodeParts {
            settings,
            node_key: Keypair::generate_ed25519(),
            owner: keys.public_key(),
            owner_keys: Some(keys.clone()),
            outbox_path: config.dir.join("outbox.db"),
            ingest: ingest.clone(),
            store: store.clone() as Arc<dyn EventStore>,
            bus: bus.clone(),
        };
        let net = NetNode::start(parts, CancellationToken::new())
            .await
            .map_err(|e| anyhow!("starting a node's network: {e}"))?;
        Ok(SimNode {
            keys,
            net,
            store,
            ingest,
            bus,
            traffic,
        })
    }

    /// The node's dialable address (`/memory/N/p2p/PEER`), once it listens (5 s at most).
    pub async fn addr(&self) -> Result<Multiaddr> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let status = self.net.network().status().await?;
            if let Some(a) = status.listen_addrs.first() {
                let peer = self.net.network().peer_id();
                return Ok(format!("{a}/p2p/{peer}").parse()?);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the node never listened")
    }

    /// Signs `builder` with the owner's keys and submits it as one of the owner's clients.
    pub async fn publish(&self, builder: EventBuilder) -> Result<Event> {
        let event = builder.finalize(&self.keys)?;
        self.ingest
            .submit(event.clone(), Origin::LocalClient)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        Ok(event)
    }

    /// Stops the network tasks, then the store's writer.
    pub async fn stop(self) {
        self.net.stop().await;
        self.store.shutdown().await;
    }
}

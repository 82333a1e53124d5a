//! One whole starling node in this process, for benchmarks and tests: a SQLite store in
//! its own directory, the node core (bus and ingest path) and the full network layer,
//! with the byte counter of its memory-transport connections. Posts go through
//! [`SimNode::publish`], the owner's own path. The binary wires a node the same way, with
//! the client APIs on top.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use starling_core::{EventBus, Ingest, Origin};
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Limits};
use starling_store::{EventStore, SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::{NetError, NetNode, NetSettings, NodeParts, Traffic};

/// A running in-process node.
pub struct SimNode {
    pub keys: Keys,
    pub net: NetNode,
    pub store: Arc<SqliteStore>,
    pub ingest: Arc<Ingest>,
    pub bus: EventBus,
    pub traffic: Traffic,
}

impl SimNode {
    /// Starts a node owned by `keys`, keeping its files in `dir`, with `settings`.
    pub async fn start(dir: &Path, keys: Keys, settings: NetSettings) -> Result<Self, NetError> {
        std::fs::create_dir_all(dir).map_err(|e| NetError::Store(e.to_string()))?;
        let store = Arc::new(
            SqliteStore::open(&dir.join("events.db"), StoreOptions::default())
                .map_err(|e| NetError::Store(e.to_string()))?,
        );
        let bus = EventBus::new();
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            bus.clone(),
            keys.public_key(),
            Limits::default(),
        ));
        let traffic = settings.memory_traffic.clone();
        let parts = NodeParts {
            settings,
            node_key: Keypair::generate_ed25519(),
            owner: keys.public_key(),
            owner_keys: Some(keys.clone()),
            outbox_path: dir.join("outbox.db"),
            ingest: ingest.clone(),
            store: store.clone() as Arc<dyn EventStore>,
            bus: bus.clone(),
        };
        let net = NetNode::start(parts, CancellationToken::new()).await?;
        Ok(Self {
            keys,
            net,
            store,
            ingest,
            bus,
            traffic,
        })
    }

    /// The node's dialable address (its first listen address with `/p2p/PEER`), once it
    /// listens (5 s at most).
    pub async fn addr(&self) -> Result<Multiaddr, NetError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let status = self.net.network().status().await?;
            if let Some(a) = status.listen_addrs.first() {
                let peer = self.net.network().peer_id();
                return format!("{a}/p2p/{peer}")
                    .parse()
                    .map_err(|e| NetError::Listen(a.clone(), format!("{e}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(NetError::Timeout)
    }

    /// Signs `builder` with the owner's keys and submits it as one of the owner's clients.
    pub async fn publish(&self, builder: EventBuilder) -> Result<Event, String> {
        let event = builder.finalize(&self.keys).map_err(|e| e.to_string())?;
        self.ingest
            .submit(event.clone(), Origin::LocalClient)
            .await
            .map_err(|e| e.to_string())?;
        Ok(event)
    }

    /// Stops the network tasks, then the store's writer.
    pub async fn stop(self) {
        self.net.stop().await;
        self.store.shutdown().await;
    }
}

//! One whole starling node in this process, for benchmarks and tests: a SQLite store in
//! its own directory, the node core (bus and ingest path) and the full network layer,
//! with the byte counter of its memory-transport connections. Posts go through
//! [`SimNode::publish`], the owner's own path. The node's network key is kept in its
//! directory, so a node restarted on the same directory is the same peer. The binary
//! wires a node the same way, with the client APIs on top.

pub mod churn;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::identity::Keypair;
use libp2p::Multiaddr;
use starling_core::{EventBus, Ingest, Origin};
use starling_proto::{Event, EventBuilder, EventId, FinalizeEvent, Keys, Limits, PublicKey};
use starling_store::{EventStore, SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::outbox::{home_target, OutboxDb};
use crate::{NetError, NetNode, NetSettings, NodeParts, Traffic};

/// A running in-process node.
pub struct SimNode {
    pub keys: Keys,
    pub net: NetNode,
    pub store: Arc<SqliteStore>,
    pub ingest: Arc<Ingest>,
    pub bus: EventBus,
    pub traffic: Traffic,
    pub dir: PathBuf,
}

/// The node's network key from `dir/node.key`, made and saved there on first use.
fn node_key(dir: &Path) -> Result<Keypair, NetError> {
    let path = dir.join("node.key");
    let err = |e: String| NetError::Store(format!("{}: {e}", path.display()));
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| err(e.to_string()))?;
            std::fs::write(&path, bytes).map_err(|e| err(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
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
            node_key: node_key(dir)?,
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
            dir: dir.to_path_buf(),
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

    /// The owner's events that reached a home-set quorum, as the node's outbox records.
    pub async fn quorum_reached(&self) -> Result<Vec<EventId>, NetError> {
        self.delivered_to_home(&self.keys.public_key()).await
    }

    /// The events this node delivered to a quorum of `user`'s home set (its own events
    /// for its owner, replies and mentions for others' inboxes), as its outbox records.
    pub async fn delivered_to_home(&self, user: &PublicKey) -> Result<Vec<EventId>, NetError> {
        let db = OutboxDb::open(&self.dir.join("outbox.db"))?;
        let ids = db.delivered_ids(home_target(user)).await?;
        Ok(ids
            .iter()
            .filter_map(|id| EventId::from_hex(id).ok())
            .collect())
    }

    /// Stops the node as a crash would: every task aborted where it stands, connections
    /// dropped, nothing flushed beyond what was already committed.
    pub fn kill(self) {
        self.net.kill();
    }

    /// Stops the network tasks, then the store's writer.
    pub async fn stop(self) {
        self.net.stop().await;
        self.store.shutdown().await;
    }
}

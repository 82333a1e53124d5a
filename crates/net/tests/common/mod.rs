//! In-process nodes for the network crate's tests: a real SQLite store in a temp dir, the
//! node core, and the full network layer on loopback TCP.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_core::{EventBus, Ingest};
use starling_net::libp2p::identity::Keypair;
use starling_net::libp2p::Multiaddr;
use starling_net::{NetNode, NetSettings, NodeParts};
use starling_proto::{Keys, Limits};
use starling_store::{EventStore, SqliteStore, StoreOptions};
use tokio_util::sync::CancellationToken;

pub struct Node {
    pub keys: Keys,
    pub net: NetNode,
    pub store: Arc<SqliteStore>,
    pub ingest: Arc<Ingest>,
    pub bus: EventBus,
    pub traffic: starling_net::Traffic,
    _dir: tempfile::TempDir,
}

impl Node {
    pub async fn start(bootstrap: Option<Multiaddr>) -> Node {
        Self::start_on("/ip4/127.0.0.1/tcp/0".parse().unwrap(), bootstrap).await
    }

    /// A node listening on `listen` (e.g. `/memory/N`).
    pub async fn start_on(listen: Multiaddr, bootstrap: Option<Multiaddr>) -> Node {
        Self::start_with(listen, bootstrap, false).await
    }

    /// A node listening on `listen`, in broadcast mode if asked.
    pub async fn start_with(
        listen: Multiaddr,
        bootstrap: Option<Multiaddr>,
        broadcast: bool,
    ) -> Node {
        Self::start_custom(listen, bootstrap, |s| s.broadcast = broadcast).await
    }

    /// A node listening on `listen`, with its settings adjusted by `configure`.
    pub async fn start_custom(
        listen: Multiaddr,
        bootstrap: Option<Multiaddr>,
        configure: impl FnOnce(&mut NetSettings),
    ) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::generate();
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("events.db"), StoreOptions::default()).unwrap(),
        );
        let bus = EventBus::new();
        let ingest = Arc::new(Ingest::new(
            store.clone(),
            bus.clone(),
            keys.public_key(),
            Limits::default(),
        ));
        let mut settings = NetSettings {
            listen: vec![listen],
            bootstrap: bootstrap.into_iter().collect(),
            public: true,
            ..NetSettings::default()
        };
        configure(&mut settings);
        let traffic = settings.memory_traffic.clone();
        let parts = NodeParts {
            settings,
            node_key: Keypair::generate_ed25519(),
            owner: keys.public_key(),
            owner_keys: Some(keys.clone()),
            outbox_path: dir.path().join("outbox.db"),
            ingest: ingest.clone(),
            store: store.clone() as Arc<dyn EventStore>,
            bus: bus.clone(),
        };
        let net = NetNode::start(parts, CancellationToken::new())
            .await
            .unwrap();
        Node {
            keys,
            net,
            store,
            ingest,
            bus,
            traffic,
            _dir: dir,
        }
    }

    /// Publishes an event signed by this node's owner through the local ingest path.
    pub async fn publish(&self, builder: starling_proto::EventBuilder) -> starling_proto::Event {
        use starling_proto::FinalizeEvent;
        let event = builder.finalize(&self.keys).unwrap();
        self.ingest
            .submit(event.clone(), starling_core::Origin::LocalClient)
            .await
            .unwrap();
        event
    }

    /// The first listen address with /p2p, once listening.
    pub async fn addr(&self) -> Multiaddr {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.net.network().status().await.unwrap();
            if let Some(a) = status.listen_addrs.first() {
                let peer = self.net.network().peer_id();
                return format!("{a}/p2p/{peer}").parse().unwrap();
            }
            assert!(Instant::now() < deadline, "node never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

//! In-process nodes for the network crate's tests ([`SimNode`]: a real SQLite store, the
//! node core and the full network layer) in temporary directories, on loopback TCP or
//! the memory transport; and, for tests that restart nodes on their directory, settings
//! on a memory port, a start that bootstraps from a given node, and a bounded wait.

#![allow(dead_code)]

use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use starling_net::libp2p::Multiaddr;
use starling_net::sim::SimNode;
use starling_net::NetSettings;
use starling_proto::Keys;

/// A [`SimNode`] in a temporary directory, with panicking helpers for tests.
pub struct Node {
    sim: SimNode,
    _dir: tempfile::TempDir,
}

impl Deref for Node {
    type Target = SimNode;

    fn deref(&self) -> &SimNode {
        &self.sim
    }
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
        let mut settings = NetSettings {
            listen: vec![listen],
            bootstrap: bootstrap.into_iter().collect(),
            public: true,
            ..NetSettings::default()
        };
        configure(&mut settings);
        let sim = SimNode::start(dir.path(), Keys::generate(), settings)
            .await
            .unwrap();
        Node { sim, _dir: dir }
    }

    /// Publishes an event signed by this node's owner through the local ingest path.
    pub async fn publish(&self, builder: starling_proto::EventBuilder) -> starling_proto::Event {
        self.sim.publish(builder).await.unwrap()
    }

    /// The first listen address with /p2p, once listening.
    pub async fn addr(&self) -> Multiaddr {
        self.sim.addr().await.expect("node never listened")
    }
}

/// Settings for node `i` listening on `/memory/{base + i}`.
pub fn memory_settings(base: u64, i: u64, public: bool) -> NetSettings {
    NetSettings {
        listen: vec![format!("/memory/{}", base + i).parse().unwrap()],
        public,
        ..NetSettings::default()
    }
}

/// Starts a [`SimNode`] keeping its files in `dir` (a restart on the same `dir` and keys
/// is the same node), bootstrapping from `boot` when given.
pub async fn start_in(
    dir: &Path,
    keys: Keys,
    mut settings: NetSettings,
    boot: Option<&SimNode>,
) -> SimNode {
    if let Some(b) = boot {
        settings.bootstrap = vec![b.addr().await.unwrap()];
    }
    SimNode::start(dir, keys, settings).await.unwrap()
}

/// Waits (bounded by `limit`) until `check` holds, returning whether it did.
pub async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

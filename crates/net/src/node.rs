//! Wiring: [`NetNode::start`] spawns the swarm actor and every delivery task for one node
//! (request service, pusher, follow task, outbox, home record, broadcast) under one
//! cancellation token and join set; [`NetNode::start_bootstrap`] spawns a bootstrap node
//! (DHT and relay only). [`NetRemote`] is what the client APIs see of the network.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use libp2p::identity::Keypair;
use serde::Serialize;
use starling_core::{EventBus, Ingest, Remote};
use starling_proto::{Event, Keys, PublicKey};
use starling_store::EventStore;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::actor;
use crate::catchup::{CatchUp, Progress, ProgressStatus};
use crate::config::NetSettings;
use crate::fetch::Fetcher;
use crate::follow::FollowTask;
use crate::handle::{NetStatus, Network};
use crate::held::Holdings;
use crate::inbox::InboxTask;
use crate::outbox::{queue_wrap, Depth, OutboxDb, OutboxTask};
use crate::policy::{Follows, Policy};
use crate::repair::RepairTask;
use crate::served::{Served, ServedStatus};
use crate::service::{self, Service};
use crate::subscribers::{self, Subscribers};
use crate::wire::WireLimits;
use crate::{broadcast, home_task, NetError};

/// What a full node brings to the network.
pub struct NodeParts {
    pub settings: NetSettings,
    pub node_key: Keypair,
    pub owner: PublicKey,
    /// The owner's keys when the node holds the nsec: needed to sign the home record.
    pub owner_keys: Option<Keys>,
    pub outbox_path: PathBuf,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub bus: EventBus,
}

/// A running network layer.
pub struct NetNode {
    pub remote: Arc<NetRemote>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

/// The network as the rest of the node sees it.
pub struct NetRemote {
    pub network: Network,
    fetcher: Option<Fetcher>,
    outbox: Option<OutboxDb>,
    subscribers: Arc<Subscribers>,
    follows: Option<Follows>,
    holdings: Option<Arc<Holdings>>,
    progress: Option<Arc<Progress>>,
    subscribed: Option<watch::Receiver<usize>>,
    served: Arc<Served>,
    /// Where the owner's gift wraps are queued (full nodes only).
    wraps: Option<WrapQueue>,
}

/// What queuing a gift wrap needs besides the outbox database.
struct WrapQueue {
    owner: PublicKey,
    wake: Arc<Notify>,
}

/// The network part of `starling status`.
#[derive(Debug, Clone, Serialize)]
pub struct NetNodeStatus {
    #[serde(flatten)]
    pub net: NetStatus,
    pub outbox: Depth,
    pub follows: usize,
    /// Followed authors with a live subscription at a home-set member or their node.
    pub subscribed: usize,
    pub subscribers: usize,
    /// Authors whose events this node keeps as a member of their home set.
    pub home_for: usize,
    /// The catch-up in progress: events found missing and fetched so far.
    pub catch_up: ProgressStatus,
    /// Peer requests answered since the node started, by kind.
    pub requests_served: ServedStatus,
}

impl NetNode {
    /// Starts the network for a node with an owner and a store.
    pub async fn start(parts: NodeParts, shutdown: CancellationToken) -> Result<Self, NetError> {
        let shutdown = shutdown.child_token();
        let outbox = OutboxDb::open(&parts.outbox_path)?;
        let (network, inbound, actor_task) = actor::spawn(
            parts.node_key,
            Some(parts.owner),
            parts.settings.clone(),
            shutdown.clone(),
        )?;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = actor_task.await;
        });
        let (follows_tx, follows) = watch::channel(Arc::new(HashSet::new()));
        let (moved_tx, moved_rx) = mpsc::channel(64);
        let (touched_tx, touched_rx) = mpsc::channel(1024);
        let subs = Arc::new(Subscribers::default());
        subscribers::restore(&subs, &outbox, &network).await;
        let owner = parts.owner;
        let holdings = Arc::new(
            Holdings::load(
                network.clone(),
                outbox.clone(),
                parts.store.clone(),
                owner,
                parts.settings.home,
            )
            .await,
        );
        let held = holdings.clone();
        let served: Arc<dyn Fn(&PublicKey) -> bool + Send + Sync> =
            Arc::new(move |pk| held.holds(pk));

        let requests_served = Arc::new(Served::default());
        let service = Service {
            net: network.clone(),
            ingest: parts.ingest.clone(),
            store: parts.store.clone(),
            policy: Policy::new(owner, follows.clone()),
            subscribers: subs.clone(),
            db: outbox.clone(),
            holdings: holdings.clone(),
            moved: moved_tx,
            touched: touched_tx,
            limits: WireLimits::default(),
            served: requests_served.clone(),
            peer_requests: parts.settings.peer_requests,
            peer_max_in_flight: parts.settings.peer_max_in_flight,
        };
        tasks.spawn(service.run(inbound, shutdown.clone()));
        tasks.spawn(subscribers::run_pusher(
            subs.clone(),
            outbox.clone(),
            network.clone(),
            parts.bus.clone(),
            served,
            shutdown.clone(),
        ));
        let progress = Arc::new(Progress::default());
        tasks.spawn(progress.clone().report(shutdown.clone()));
        let catch_up = CatchUp {
            net: network.clone(),
            store: parts.store.clone(),
            ingest: parts.ingest.clone(),
            progress: progress.clone(),
        };
        let (subscribed_tx, subscribed) = watch::channel(0);
        let follow = FollowTask {
            subscribed: subscribed_tx,
            catch_up: catch_up.clone(),
            net: network.clone(),
            ingest: parts.ingest.clone(),
            store: parts.store.clone(),
            bus: parts.bus.clone(),
            owner,
            lease: parts.settings.subscription_lease,
            follows: follows_tx,
            moved: moved_rx,
            db: outbox.clone(),
        };
        tasks.spawn(follow.run(shutdown.clone()));
        let outbox_wake = Arc::new(Notify::new());
        let outbox_task = OutboxTask {
            db: outbox.clone(),
            net: network.clone(),
            store: parts.store.clone(),
            bus: parts.bus.clone(),
            owner,
            settings: parts.settings.outbox,
            home: parts.settings.home,
            wake: outbox_wake.clone(),
        };
        tasks.spawn(outbox_task.run(shutdown.clone()));
        let inbox = InboxTask {
            catch_up: catch_up.clone(),
            owner,
        };
        tasks.spawn(inbox.run(shutdown.clone()));
        let repair = RepairTask {
            net: network.clone(),
            store: parts.store.clone(),
            ingest: parts.ingest.clone(),
            holdings: holdings.clone(),
            subscribers: subs.clone(),
            db: outbox.clone(),
            settings: parts.settings.home,
            touched: touched_rx,
        };
        tasks.spawn(repair.run(shutdown.clone()));
        match parts.owner_keys {
            Some(keys) => {
                tasks.spawn(home_task::run(
                    network.clone(),
                    keys,
                    parts.settings.home_refresh,
                    shutdown.clone(),
                ));
            }
            None => warn!(
                "the node holds only the owner's npub: it cannot sign a home record, so other \
                 nodes cannot find it by npub"
            ),
        }
        if parts.settings.broadcast {
            tasks.spawn(broadcast::run(
                network.clone(),
                parts.bus.clone(),
                owner,
                shutdown.clone(),
            ));
        }
        let fetcher = Fetcher::new(network.clone(), parts.ingest, parts.store, owner);
        let remote = Arc::new(NetRemote {
            network,
            fetcher: Some(fetcher),
            outbox: Some(outbox),
            subscribers: subs,
            follows: Some(follows),
            holdings: Some(holdings),
            progress: Some(progress),
            subscribed: Some(subscribed),
            served: requests_served,
            wraps: Some(WrapQueue {
                owner,
                wake: outbox_wake,
            }),
        });
        Ok(Self {
            remote,
            tasks,
            shutdown,
        })
    }

    /// Starts a bootstrap node: DHT server and relay, no store, every request refused.
    pub fn start_bootstrap(
        settings: NetSettings,
        node_key: Keypair,
        shutdown: CancellationToken,
    ) -> Result<Self, NetError> {
        let shutdown = shutdown.child_token();
        let settings = NetSettings {
            full_node: false,
            ..settings
        };
        let (network, inbound, actor_task) =
            actor::spawn(node_key, None, settings, shutdown.clone())?;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let _ = actor_task.await;
        });
        tasks.spawn(service::refuse_all(
            network.clone(),
            inbound,
            shutdown.clone(),
        ));
        let remote = Arc::new(NetRemote {
            network,
            fetcher: None,
            outbox: None,
            subscribers: Arc::new(Subscribers::default()),
            follows: None,
            holdings: None,
            progress: None,
            subscribed: None,
            served: Arc::new(Served::default()),
            wraps: None,
        });
        Ok(Self {
            remote,
            tasks,
            shutdown,
        })
    }

    pub fn network(&self) -> &Network {
        &self.remote.network
    }

    /// Stops as a crash would: every task aborted where it stands, without waiting for
    /// anything (the swarm actor closes its connections at its next turn).
    pub fn kill(mut self) {
        self.shutdown.cancel();
        self.tasks.abort_all();
    }

    /// Stops every task and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl NetRemote {
    pub async fn node_status(&self) -> Result<NetNodeStatus, NetError> {
        let net = self.network.status().await?;
        let outbox = match &self.outbox {
            Some(db) => db.depth().await?,
            None => Depth::default(),
        };
        Ok(NetNodeStatus {
            net,
            outbox,
            follows: self.follows.as_ref().map_or(0, |f| f.borrow().len()),
            subscribed: self.subscribed.as_ref().map_or(0, |s| *s.borrow()),
            subscribers: self.subscribers.len(),
            home_for: self.holdings.as_ref().map_or(0, |h| h.len()),
            catch_up: self
                .progress
                .as_ref()
                .map_or_else(ProgressStatus::default, |p| p.snapshot()),
            requests_served: self.served.snapshot(),
        })
    }
}

#[async_trait::async_trait]
impl Remote for NetRemote {
    async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize {
        match &self.fetcher {
            Some(f) => f.fetch_missing(authors).await,
            None => 0,
        }
    }

    async fn send_private(&self, wrap: &Event, json: &str) -> Result<(), String> {
        let (Some(q), Some(db)) = (&self.wraps, &self.outbox) else {
            return Err("this node does not deliver private messages (no outbox)".into());
        };
        queue_wrap(db, &q.wake, &q.owner, wrap, json)
            .await
            .map_err(|e| e.to_string())
    }

    async fn status(&self) -> serde_json::Value {
        match self.node_status().await {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        }
    }

    async fn whereis(&self, author: PublicKey) -> Result<Option<serde_json::Value>, String> {
        let record = self
            .network
            .resolve(author)
            .await
            .map_err(|e| e.to_string())?;
        let home_set = match self.network.home_set(author, false).await {
            Ok(set) => set
                .members
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "peer_id": m.peer.to_string(),
                        "addrs": m.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(record.map(|r| {
            serde_json::json!({
                "author": r.author.to_hex(),
                "peer_id": r.peer.to_string(),
                "addrs": r.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "created_at": r.created_at.as_secs(),
                "record": serde_json::from_str::<serde_json::Value>(&r.json).unwrap_or_default(),
                "home_set": home_set,
            })
        }))
    }
}

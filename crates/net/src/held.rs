//! The authors this node keeps events of as a member of their home set ("held" authors).
//!
//! A node takes an author's events from peers when its own routing table ranks it among
//! the author's closest reachable nodes, with a little slack (routing tables differ a
//! little between nodes while the network changes). From then on it holds the author:
//! it serves the author's followers, keeps the author's events within the per-author
//! quota, and re-checks the role in the repair task. The list is kept in memory and
//! written through to `outbox.db`, so a restart keeps the role.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use starling_proto::{Filter, PublicKey, Timestamp};
use starling_store::EventStore;
use tracing::{info, warn};

use crate::config::HomeSettings;
use crate::handle::Network;
use crate::outbox::OutboxDb;

/// Ranks beyond R a node still accepts the role at.
const SLACK: usize = 2;

/// The held authors; one owner of this state, shared by the service and the repair task.
pub struct Holdings {
    net: Network,
    db: OutboxDb,
    store: Arc<dyn EventStore>,
    owner: PublicKey,
    settings: HomeSettings,
    held: Mutex<HashSet<PublicKey>>,
}

impl Holdings {
    /// Loads the held authors saved before a restart.
    pub async fn load(
        net: Network,
        db: OutboxDb,
        store: Arc<dyn EventStore>,
        owner: PublicKey,
        settings: HomeSettings,
    ) -> Self {
        let mut held = HashSet::new();
        match db.held().await {
            Ok(rows) => {
                held.extend(rows.iter().filter_map(|h| PublicKey::from_hex(h).ok()));
            }
            Err(e) => warn!(error = %e, "cannot load the held authors"),
        }
        if !held.is_empty() {
            info!(authors = held.len(), "home-set roles restored");
        }
        Self {
            net,
            db,
            store,
            owner,
            settings,
            held: Mutex::new(held),
        }
    }

    /// Whether this node keeps `author`'s events (its owner, or a held author).
    pub fn holds(&self, author: &PublicKey) -> bool {
        *author == self.owner || self.lock().contains(author)
    }

    /// The held authors (not the owner).
    pub fn authors(&self) -> Vec<PublicKey> {
        self.lock().iter().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this node takes `author`'s events as a home-set member: it already holds
    /// the author, or its routing table ranks it among the author's closest nodes (then it
    /// starts holding the author). `slack` allows a rank a little past R (pushes: the
    /// pusher's view may differ a little); live subscriptions are taken only within R.
    pub async fn accepts(&self, author: &PublicKey, slack: bool) -> bool {
        if self.holds(author) {
            return true;
        }
        let limit = self.settings.replicas + if slack { SLACK } else { 0 };
        if !self.ranks_within(author, limit).await {
            return false;
        }
        self.hold(author).await;
        true
    }

    /// Whether this node's routing table ranks it among the `limit` closest to `author`.
    async fn ranks_within(&self, author: &PublicKey, limit: usize) -> bool {
        match self.net.local_home(*author).await {
            Ok(view) => view.rank.is_some_and(|r| r < limit),
            Err(_) => false,
        }
    }

    async fn hold(&self, author: &PublicKey) {
        let new = self.lock().insert(*author);
        if new {
            info!(%author, "now keeping this author's events as a home-set member");
            if let Err(e) = self
                .db
                .set_held(author.to_hex(), true, Timestamp::now().as_secs())
                .await
            {
                warn!(error = %e, "cannot save a held author");
            }
        }
    }

    /// Stops holding `author` (this node left its home set).
    pub async fn release(&self, author: &PublicKey) {
        if self.lock().remove(author) {
            info!(%author, "no longer in this author's home set");
            crate::outbox::db::log_failed_write(
                self.db.set_held(author.to_hex(), false, 0).await,
                "forget a held author",
            );
        }
    }

    /// Whether `author` is still under the per-author quota here.
    /// Events of one held author (and, separately, of one inbox) this node keeps.
    pub fn quota(&self) -> u64 {
        self.settings.quota_events
    }

    pub async fn within_quota(&self, author: &PublicKey) -> bool {
        self.under_quota(author, Filter::new().author(*author))
            .await
    }

    /// Whether `user`'s inbox (events tagging them: replies, mentions, reactions, gift
    /// wraps) kept here is still under the per-user quota.
    pub async fn inbox_within_quota(&self, user: &PublicKey) -> bool {
        self.under_quota(user, Filter::new().pubkey(*user)).await
    }

    /// Whether the events of `user` that `filter` selects are fewer than the quota (the
    /// owner's never count against it).
    async fn under_quota(&self, user: &PublicKey, filter: Filter) -> bool {
        if *user == self.owner {
            return true;
        }
        match self.store.count(vec![filter]).await {
            Ok(n) => n < self.settings.quota_events,
            Err(_) => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<PublicKey>> {
        self.held.lock().expect("held authors poisoned")
    }
}

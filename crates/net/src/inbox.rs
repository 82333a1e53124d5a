//! The owner's inbox at its home set: replies, mentions, reactions and private messages
//! addressed to the owner are also delivered to the owner's home set (see `outbox`), so
//! that they reach the owner after downtime even when their sender has gone. This task
//! collects them: shortly after start, whenever the node comes back online, and
//! periodically, it reconciles the events tagging the owner (a window before the newest
//! one held, see `catchup`) with each member of the owner's home set and fetches those it
//! lacks, keeping only events that really tag the owner.

use std::time::Duration;

use starling_proto::{Filter, PublicKey};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::catchup::CatchUp;
use crate::policy::tags_owner;

/// First try after start, and the retry delay until a home set is found.
const FIRST: Duration = Duration::from_secs(2);
/// Between two collections once one worked.
const EVERY: Duration = Duration::from_secs(120);

/// The inbox collector.
pub struct InboxTask {
    pub catch_up: CatchUp,
    pub owner: PublicKey,
}

impl InboxTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wait = FIRST;
        let mut online = self.catch_up.net.reconnects();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                changed = online.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Give the routing table a moment to fill before looking up the set.
                    tokio::time::sleep(FIRST).await;
                }
            }
            wait = match self.collect().await {
                Some(stored) => {
                    if stored > 0 {
                        info!(stored, "collected the inbox from the home set");
                    }
                    EVERY
                }
                None => (wait * 2).min(EVERY),
            };
        }
    }

    /// One round over the home set; `None` when no member could be asked.
    async fn collect(&self) -> Option<usize> {
        let net = &self.catch_up.net;
        let me = net.peer_id();
        let set = match net.home_set(self.owner, true).await {
            Ok(set) => set,
            Err(e) => {
                debug!(error = %e, "inbox: no home set yet");
                return None;
            }
        };
        let filter = self.catch_up.window(Filter::new().pubkey(self.owner)).await;
        let mut asked = 0;
        let mut stored = 0;
        for member in set.members.iter().filter(|m| m.peer != me) {
            let owner = self.owner;
            let check = |e: &starling_proto::Event| {
                if tags_owner(e, &owner) {
                    Ok(())
                } else {
                    Err("does not tag this node's owner".to_string())
                }
            };
            match self.catch_up.with_member(member, &filter, check).await {
                Ok(n) => {
                    asked += 1;
                    stored += n;
                }
                Err(e) => {
                    debug!(peer = %member.peer, error = %e, "inbox: member did not reconcile")
                }
            }
        }
        let alone = set.members.iter().all(|m| m.peer == me);
        (asked > 0 || alone).then_some(stored)
    }
}

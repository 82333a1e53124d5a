//! The owner's inbox at its home set: replies, mentions, reactions and private messages
//! addressed to the owner are also delivered to the owner's home set (see `outbox`), so
//! that they reach the owner after downtime even when their sender has gone. This task
//! collects them: shortly after start, then periodically, it asks each member of the
//! owner's home set for the events tagging the owner since shortly before the newest one
//! the store holds, and ingests those that really tag the owner.

use std::sync::Arc;
use std::time::Duration;

use starling_core::Ingest;
use starling_proto::{Filter, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::event_times;
use crate::handle::Network;
use crate::homeset::Member;
use crate::policy::{ingest_answer, tags_owner};
use crate::wire::{Request, RequestBody, ResponseBody};

/// First try after start, and the retry delay until a home set is found.
const FIRST: Duration = Duration::from_secs(2);
/// Between two collections once one worked.
const EVERY: Duration = Duration::from_secs(120);
/// Overlap with what the store already holds (clock skew, late deliveries).
const OVERLAP_SECS: u64 = 600;
/// Events asked per request, and requests per member at most.
const PAGE: usize = 500;
const MAX_PAGES: usize = 20;

/// The inbox collector.
pub struct InboxTask {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub owner: PublicKey,
}

impl InboxTask {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wait = FIRST;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
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
        let me = self.net.peer_id();
        let set = match self.net.home_set(self.owner, true).await {
            Ok(set) => set,
            Err(e) => {
                debug!(error = %e, "inbox: no home set yet");
                return None;
            }
        };
        let since = self.newest_held().await.saturating_sub(OVERLAP_SECS);
        let mut asked = 0;
        let mut stored = 0;
        for member in set.members.iter().filter(|m| m.peer != me) {
            if let Some(n) = self.collect_from(member, since).await {
                asked += 1;
                stored += n;
            }
        }
        let alone = set.members.iter().all(|m| m.peer == me);
        (asked > 0 || alone).then_some(stored)
    }

    async fn collect_from(&self, member: &Member, since: u64) -> Option<usize> {
        let mut until: Option<Timestamp> = None;
        let mut stored = 0;
        for _ in 0..MAX_PAGES {
            let mut filter = Filter::new()
                .pubkey(self.owner)
                .since(Timestamp::from(since))
                .limit(PAGE);
            if let Some(u) = until {
                filter = filter.until(u);
            }
            let request = Request::new(RequestBody::Fetch {
                filters: vec![filter.as_json()],
                limit: PAGE as u32,
            });
            let answer = self
                .net
                .request(member.peer, member.addrs.clone(), request)
                .await;
            let (events, more) = match answer.map(|d| d.response.body) {
                Ok(ResponseBody::Events { events, more }) => (events, more),
                Ok(other) => {
                    debug!(peer = %member.peer, answer = ?other, "inbox: member refused");
                    return None;
                }
                Err(e) => {
                    debug!(peer = %member.peer, error = %e, "inbox: member unreachable");
                    return None;
                }
            };
            stored += ingest_answer(&self.ingest, &events, |e| {
                if tags_owner(e, &self.owner) {
                    Ok(())
                } else {
                    Err("does not tag this node's owner".into())
                }
            })
            .await;
            let oldest = event_times::oldest(&events);
            if !more || oldest.is_none() || oldest == until {
                break;
            }
            until = oldest;
        }
        Some(stored)
    }

    async fn newest_held(&self) -> u64 {
        event_times::newest_stored(self.store.as_ref(), Filter::new().pubkey(self.owner)).await
    }
}

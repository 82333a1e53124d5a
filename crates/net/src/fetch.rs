//! Fetching authors the node has never seen: a REQ (or REST `/req`) naming an author the
//! store holds nothing of makes the node look up that author's home record and ask the
//! author's node for their profile, follow list and recent posts, which then enter the
//! store through the ingest path and reach open subscriptions live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use starling_core::Ingest;
use starling_proto::{Filter, Kind, PublicKey};
use starling_store::EventStore;
use tracing::{debug, info};

use crate::handle::Network;
use crate::policy::ingest_by_author;
use crate::wire::{Request, RequestBody, ResponseBody};

/// An author tried is not tried again for this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Recent posts fetched per unknown author.
const RECENT: usize = 100;
/// Authors fetched per call at most.
const MAX_AUTHORS: usize = 16;

/// Fetches unknown authors on demand.
pub struct Fetcher {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub owner: PublicKey,
    /// When each author was last tried. A tiny map; locked only for quick lookups, never
    /// across an `.await`.
    tried: Mutex<HashMap<PublicKey, Instant>>,
}

impl Fetcher {
    pub fn new(
        net: Network,
        ingest: Arc<Ingest>,
        store: Arc<dyn EventStore>,
        owner: PublicKey,
    ) -> Self {
        Self {
            net,
            ingest,
            store,
            owner,
            tried: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches the authors among `authors` that the store knows nothing of. Returns how
    /// many events were newly stored.
    pub async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize {
        let mut unknown = Vec::new();
        for pk in authors.into_iter().take(MAX_AUTHORS) {
            if pk == self.owner || !self.claim(pk) {
                continue;
            }
            let held = self
                .store
                .query_json(vec![Filter::new().author(pk).limit(1)])
                .await
                .map_or(true, |found| !found.is_empty());
            if !held {
                unknown.push(pk);
            }
        }
        let counts = join_all(unknown.into_iter().map(|pk| self.fetch_one(pk))).await;
        counts.into_iter().sum()
    }

    /// Marks `pk` as tried now; false if it was tried moments ago.
    fn claim(&self, pk: PublicKey) -> bool {
        let now = Instant::now();
        let mut tried = self.tried.lock().expect("fetch table poisoned");
        tried.retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
        if tried.contains_key(&pk) {
            return false;
        }
        tried.insert(pk, now);
        true
    }

    async fn fetch_one(&self, pk: PublicKey) -> usize {
        let home = match self.net.resolve(pk).await {
            Ok(Some(home)) => home,
            Ok(None) => {
                debug!(author = %pk, "unknown author has no home record");
                return 0;
            }
            Err(e) => {
                debug!(author = %pk, error = %e, "cannot look up an unknown author");
                return 0;
            }
        };
        let filters = vec![
            Filter::new()
                .author(pk)
                .kinds([Kind::Metadata, Kind::ContactList])
                .limit(2)
                .as_json(),
            Filter::new().author(pk).limit(RECENT).as_json(),
        ];
        let request = Request::new(RequestBody::Fetch {
            filters,
            limit: (RECENT + 2) as u32,
        });
        let events = match self.net.request(home.peer, home.addrs, request).await {
            Ok(d) => match d.response.body {
                ResponseBody::Events { events, .. } => events,
                other => {
                    debug!(author = %pk, answer = ?other, "fetch refused");
                    return 0;
                }
            },
            Err(e) => {
                debug!(author = %pk, error = %e, "fetch failed");
                return 0;
            }
        };
        let stored = ingest_by_author(&self.ingest, &events, pk).await;
        info!(author = %pk, stored, "fetched an unknown author");
        stored
    }
}

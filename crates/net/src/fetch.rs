//! Fetching authors the node has never seen: a REQ (or REST `/req`) naming an author the
//! store holds nothing of makes the node ask the primary of the author's home set and the
//! author's own node (found through its home record) at once, and the other members when
//! neither answered, for the author's profile, follow list and recent posts, which then
//! enter the store through the ingest path and reach open subscriptions live. The
//! author's node need not be up.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use starling_core::Ingest;
use starling_proto::{raw_event_pubkey, Filter, Kind, PublicKey};
use starling_store::EventStore;
use tracing::{debug, info};

use crate::handle::Network;
use crate::homeset::Member;
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
    /// many events arrived (stored now, or already stored by another path meanwhile, such
    /// as a home-set push racing the fetch).
    pub async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize {
        let claimed: Vec<PublicKey> = authors
            .into_iter()
            .take(MAX_AUTHORS)
            .filter(|pk| *pk != self.owner && self.claim(*pk))
            .collect();
        if claimed.is_empty() {
            return 0;
        }
        // One query for all of them (a filter each, one event each): a REQ naming twenty
        // authors costs one trip to the store here, not twenty.
        let filters = claimed
            .iter()
            .map(|pk| Filter::new().author(*pk).limit(1))
            .collect();
        let held: HashSet<PublicKey> = match self.store.query_json(filters).await {
            Ok(found) => found.iter().filter_map(|j| raw_event_pubkey(j)).collect(),
            // The store cannot say: fetch nothing rather than everything.
            Err(_) => return 0,
        };
        let unknown: Vec<PublicKey> = claimed
            .into_iter()
            .filter(|pk| !held.contains(pk))
            .collect();
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
        let me = self.net.peer_id();
        let (set, home) = tokio::join!(self.net.home_set(pk, false), self.net.resolve(pk));
        let members: Vec<Member> = match set {
            Ok(set) => set.members.into_iter().filter(|m| m.peer != me).collect(),
            Err(e) => {
                debug!(author = %pk, error = %e, "no home set for an unknown author");
                Vec::new()
            }
        };
        let own = match home {
            Ok(Some(h)) if h.peer != me => Some(Member {
                peer: h.peer,
                addrs: h.addrs,
            }),
            Ok(_) => None,
            Err(e) => {
                debug!(author = %pk, error = %e, "cannot look up an unknown author");
                None
            }
        };
        // The primary and the author's node at once: a member may lag a moment behind
        // the author, and the author's node may be off.
        let mut first: Vec<Member> = members.first().cloned().into_iter().collect();
        if let Some(own) = own.filter(|o| !first.iter().any(|m| m.peer == o.peer)) {
            first.push(own);
        }
        let answers = join_all(first.iter().map(|m| self.ask(pk, m))).await;
        let mut events: Vec<String> = answers.concat();
        for member in members.iter().skip(1) {
            if !events.is_empty() {
                break;
            }
            events = self.ask(pk, member).await;
        }
        let stored = ingest_by_author(&self.ingest, &events, pk).await;
        info!(author = %pk, arrived = events.len(), stored, "fetched an unknown author");
        events.len()
    }

    /// Asks `member` for `pk`'s profile, follow list and recent posts.
    async fn ask(&self, pk: PublicKey, member: &Member) -> Vec<String> {
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
        match self
            .net
            .request(member.peer, member.addrs.clone(), request)
            .await
        {
            Ok(d) => match d.response.body {
                ResponseBody::Events { events, .. } => events,
                other => {
                    debug!(author = %pk, peer = %member.peer, answer = ?other, "fetch refused");
                    Vec::new()
                }
            },
            Err(e) => {
                debug!(author = %pk, peer = %member.peer, error = %e, "fetch failed");
                Vec::new()
            }
        }
    }
}

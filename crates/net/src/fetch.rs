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
use starling_proto::{stored_pubkey, Filter, Kind, PublicKey};
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

/// When each author was last tried. A lookup costs the same however many authors are in
/// it: stale entries are dropped only when it has doubled since they last were.
#[derive(Debug, Default)]
struct Tried {
    at: HashMap<PublicKey, Instant>,
    /// The size at which stale entries are dropped next.
    prune_at: usize,
}

impl Tried {
    /// Entries kept before the first pruning.
    const MIN_PRUNE_AT: usize = 1024;

    /// Marks as tried at `now` each of `authors` not tried in the last [`RETRY_AFTER`];
    /// returns those.
    fn claim(&mut self, authors: impl Iterator<Item = PublicKey>, now: Instant) -> Vec<PublicKey> {
        if self.at.len() >= self.prune_at.max(Self::MIN_PRUNE_AT) {
            self.at
                .retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
            self.prune_at = self.at.len() * 2;
        }
        authors
            .filter(|pk| {
                let fresh = self
                    .at
                    .get(pk)
                    .is_some_and(|at| now.duration_since(*at) < RETRY_AFTER);
                if !fresh {
                    self.at.insert(*pk, now);
                }
                !fresh
            })
            .collect()
    }
}

/// Fetches unknown authors on demand.
pub struct Fetcher {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub owner: PublicKey,
    /// Authors tried lately; locked only for quick lookups, never across an `.await`.
    tried: Mutex<Tried>,
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
            tried: Mutex::new(Tried::default()),
        }
    }

    /// Fetches the authors among `authors` that the store knows nothing of. Returns how
    /// many events the peers sent, counted whether or not this fetch stored them: one may
    /// have come by another path meanwhile (a home-set push racing the fetch), and a
    /// refused one only costs the caller a second look at the store.
    pub async fn fetch_missing(&self, authors: Vec<PublicKey>) -> usize {
        let claimed = self.tried.lock().expect("fetch table poisoned").claim(
            authors
                .into_iter()
                .filter(|pk| *pk != self.owner)
                .take(MAX_AUTHORS),
            Instant::now(),
        );
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
            Ok(found) => found.iter().filter_map(|j| stored_pubkey(j)).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::Keys;

    fn keys(n: usize) -> Vec<PublicKey> {
        (0..n).map(|_| Keys::generate().public_key()).collect()
    }

    #[test]
    fn an_author_is_tried_again_only_after_the_wait() {
        let mut tried = Tried::default();
        let authors = keys(3);
        let t0 = Instant::now();
        assert_eq!(tried.claim(authors.clone().into_iter(), t0), authors);
        assert!(tried
            .claim(authors.clone().into_iter(), t0 + RETRY_AFTER / 2)
            .is_empty());
        assert_eq!(
            tried.claim(authors.clone().into_iter(), t0 + RETRY_AFTER),
            authors
        );
    }

    #[test]
    fn pruning_drops_only_stale_authors() {
        let mut tried = Tried::default();
        let t0 = Instant::now();
        let old = keys(Tried::MIN_PRUNE_AT);
        tried.claim(old.clone().into_iter(), t0);
        let recent = keys(2);
        let later = t0 + RETRY_AFTER;
        // The table is full: this call drops the stale entries before claiming.
        assert_eq!(tried.claim(recent.clone().into_iter(), later), recent);
        assert_eq!(tried.at.len(), 2);
        assert!(tried.claim(recent.into_iter(), later).is_empty());
        assert_eq!(tried.claim(old[..1].iter().copied(), later), old[..1]);
    }
}

//! The naive catch-up, for comparison: for every followed author, ask a member of the
//! author's home set for the author's events since the newest one held minus an overlap,
//! page by page (`Fetch`, newest first, the next page ending at the oldest `created_at` of
//! the last), and ingest what comes back. No reconciliation: whatever the member sends
//! travels, duplicates included. The node that runs it is a copy of R's offline store
//! under a fresh owner who follows nobody and a fresh network key, so the node's own
//! follow task does nothing and every note it gains comes from these fetches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use serde::Serialize;
use starling_core::Ingest;
use starling_net::event_times;
use starling_net::homeset::Member;
use starling_net::policy::ingest_by_author;
use starling_net::wire::{Request, RequestBody, ResponseBody};
use starling_net::{HomeSettings, NetError, Network};
use starling_proto::Keys;
use starling_proto::{Filter, PublicKey, Timestamp};
use starling_store::SqliteStore;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catchup::cli::Settings;
use crate::catchup::measure::home_for;
use crate::catchup::measure::{self, Measured};
use crate::catchup::world::World;
use crate::netsim;

/// Pages asked per author at most.
const MAX_PAGES: usize = 100;
/// Between two home-set lookups while the node has no routing table yet.
const LOOKUP_RETRY: Duration = Duration::from_millis(250);

/// The naive method's own counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NaiveFigures {
    pub authors_done: u64,
    pub authors_failed: u64,
    pub home_set_lookups: u64,
    pub requests: u64,
    /// Bytes of the filters' JSON text sent.
    pub filter_bytes: u64,
    /// Events the answers carried, and the bytes of their JSON text.
    pub events_received: u64,
    pub event_bytes_received: u64,
    /// Of the events received, those newly stored (the rest were held already).
    pub events_stored: u64,
    pub first_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    lookups: AtomicU64,
    requests: AtomicU64,
    filter_bytes: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
    stored: AtomicU64,
}

/// What one author's fetch needs.
#[derive(Clone)]
pub struct Fetcher {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<SqliteStore>,
    pub overlap_secs: u64,
    pub page_limit: u32,
}

/// Fetches every author, `parallel` at a time, until done or `deadline`.
pub async fn run(
    fetcher: Fetcher,
    authors: &[PublicKey],
    parallel: usize,
    deadline: Instant,
) -> NaiveFigures {
    let counters = Arc::new(Counters::default());
    let permits = Arc::new(Semaphore::new(parallel));
    let mut tasks = JoinSet::new();
    for &author in authors {
        let (f, c, permits) = (fetcher.clone(), counters.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            match f.author(author, &c, deadline).await {
                Ok(()) => {
                    c.done.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    Some(format!("{author}: {e}"))
                }
            }
        });
    }
    let mut first_error = None;
    let all = async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Some(e)) = done {
                first_error.get_or_insert(e);
            }
        }
    };
    if tokio::time::timeout_at(deadline.into(), all).await.is_err() {
        first_error.get_or_insert("deadline".into());
    }
    tasks.abort_all();
    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    NaiveFigures {
        authors_done: load(&c.done),
        authors_failed: load(&c.failed),
        home_set_lookups: load(&c.lookups),
        requests: load(&c.requests),
        filter_bytes: load(&c.filter_bytes),
        events_received: load(&c.received),
        event_bytes_received: load(&c.received_bytes),
        events_stored: load(&c.stored),
        first_error,
    }
}

impl Fetcher {
    /// One author: the since point, the home set, then the pages from the first member
    /// that answers.
    async fn author(
        &self,
        author: PublicKey,
        c: &Counters,
        deadline: Instant,
    ) -> Result<(), NetError> {
        let newest =
            event_times::newest_stored(self.store.as_ref(), Filter::new().author(author)).await;
        let since = if newest == 0 {
            0
        } else {
            newest.saturating_sub(self.overlap_secs)
        };
        let members = self.members(author, c, deadline).await?;
        let mut last = NetError::NoHomeSet(author.to_hex());
        for member in &members {
            match self.pages(member, author, since, c).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `author`'s home set without this node. A node that has just started may know no
    /// peer yet (the lookup then names only itself) or too few: it looks up again, afresh,
    /// until the set has [`HomeSettings::replicas`] other members or `deadline`.
    async fn members(
        &self,
        author: PublicKey,
        c: &Counters,
        deadline: Instant,
    ) -> Result<Vec<Member>, NetError> {
        let me = self.net.peer_id();
        let want = HomeSettings::default().replicas;
        let mut fresh = false;
        loop {
            c.lookups.fetch_add(1, Ordering::Relaxed);
            let found = self.net.home_set(author, fresh).await;
            let members: Vec<Member> = match &found {
                Ok(set) => set
                    .members
                    .iter()
                    .filter(|m| m.peer != me)
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            if members.len() >= want {
                return Ok(members);
            }
            if Instant::now() + LOOKUP_RETRY >= deadline {
                return match found {
                    Err(e) => Err(e),
                    Ok(_) if members.is_empty() => Err(NetError::NoHomeSet(author.to_hex())),
                    Ok(_) => Ok(members),
                };
            }
            fresh = true;
            tokio::time::sleep(LOOKUP_RETRY).await;
        }
    }

    /// Pages of `author`'s events since `since` from `member`, newest first.
    async fn pages(
        &self,
        member: &Member,
        author: PublicKey,
        since: u64,
        c: &Counters,
    ) -> Result<(), NetError> {
        let mut until: Option<Timestamp> = None;
        for _ in 0..MAX_PAGES {
            let mut filter = Filter::new()
                .author(author)
                .since(Timestamp::from(since))
                .limit(self.page_limit as usize);
            if let Some(u) = until {
                filter = filter.until(u);
            }
            let json = filter.as_json();
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.filter_bytes
                .fetch_add(json.len() as u64, Ordering::Relaxed);
            let request = Request::new(RequestBody::Fetch {
                filters: vec![json],
                limit: self.page_limit,
            });
            let answer = self
                .net
                .request(member.peer, member.addrs.clone(), request)
                .await?;
            let (events, more) = match answer.response.body {
                ResponseBody::Events { events, more } => (events, more),
                ResponseBody::Refused { reason } => return Err(NetError::Refused(reason)),
                _ => return Err(NetError::Protocol),
            };
            c.received.fetch_add(events.len() as u64, Ordering::Relaxed);
            let bytes: usize = events.iter().map(String::len).sum();
            c.received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            let stored = ingest_by_author(&self.ingest, &events, author).await;
            c.stored.fetch_add(stored as u64, Ordering::Relaxed);
            let Some(oldest) = event_times::oldest(&events) else {
                return Ok(());
            };
            if !more {
                return Ok(());
            }
            // The next page ends at this page's oldest second (inclusive: a few repeats);
            // one second earlier if a whole page shared that second.
            until = Some(if until == Some(oldest) {
                Timestamp::from(oldest.as_secs().saturating_sub(1))
            } else {
                oldest
            });
        }
        Ok(())
    }
}

/// The naive method as a whole: the copy of R's offline store started under a fresh owner
/// and a network key outside every author's home set, timed from just before its start
/// until its store holds every note (or two seconds after the fetches ended without it).
pub async fn method(
    world: &World,
    settings: &Settings,
    expected: u64,
    background: f64,
    rng: &mut StdRng,
) -> Measured {
    let mut m = Measured {
        method: "naive since-fetch".into(),
        expected,
        ..Measured::default()
    };
    let (key, ranks) = match world.far_key(rng) {
        Ok(k) => k,
        Err(e) => {
            m.notes.push(format!("{e:#}"));
            return m;
        }
    };
    let addr = format!("/memory/{}", world.base + 9_001);
    let filter = measure::notes_of(&world.authors);
    let others_before = netsim::sent(&world.others);
    let t0 = Instant::now();
    let deadline = t0 + settings.sync_timeout;
    let node = match netsim::start(
        &world.copy_dir(),
        Keys::generate(),
        &key,
        &addr,
        &world.r_bootstrap,
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            m.notes.push(format!("the copy did not start: {e:#}"));
            return m;
        }
    };
    let fetcher = Fetcher {
        net: node.net.network().clone(),
        ingest: node.ingest.clone(),
        store: node.store.clone(),
        overlap_secs: settings.overlap_secs,
        page_limit: settings.page_limit,
    };
    let fetched = CancellationToken::new();
    let fetch = {
        let (authors, fetched) = (world.authors.clone(), fetched.clone());
        let parallel = settings.parallel;
        async move {
            let figures = run(fetcher, &authors, parallel, deadline).await;
            fetched.cancel();
            figures
        }
    };
    let bytes = || {
        let own = node.traffic.sent();
        (netsim::sent(&world.others) - others_before + own, own)
    };
    let done = measure::Done::Token(fetched);
    let watch = measure::watch(&node.store, &filter, expected, (t0, deadline), bytes, done);
    let (figures, w) = tokio::join!(fetch, watch);
    let mut out = measure::figures(&m.method, &w, expected, background);
    out.naive = Some(figures);
    out.ranks = Some(ranks);
    out.home_for_at_end = home_for(&node).await;
    let mut running = world.running();
    running.push(&node);
    out.tail_bytes = measure::tail(running).await;
    node.stop().await;
    out
}

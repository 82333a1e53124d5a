//! Measuring one catch-up method: the clock starts right before the returning node is
//! started; every 50 ms the node's store is asked how many of the followed authors' notes
//! it holds, and the first poll that finds them all stops the clock and reads the byte
//! counters (every node's, summed, and the returning node's own). While it waits it also
//! samples the node's `status` (live subscriptions, the catch-up counters) every 250 ms.
//! [`starling`] runs starling's own catch-up (R restarted on its directory); the naive
//! method lives in `naive`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use starling_net::catchup::ProgressStatus;
use starling_net::sim::SimNode;
use starling_net::NetRemote;
use starling_proto::{Filter, Kind, PublicKey};
use starling_store::{EventStore, SqliteStore};
use tokio_util::sync::CancellationToken;

use crate::catchup::world::World;
use crate::netsim;

/// Between two store polls.
const POLL: Duration = Duration::from_millis(50);
/// Between two status samples.
const STATUS_EVERY: Duration = Duration::from_millis(250);
/// After the work ended without in-sync, the watch waits this long at most.
const GIVE_UP: Duration = Duration::from_secs(2);
/// Traffic still counted after in-sync, reported apart (trailing acks, repair rounds).
pub const TAIL: Duration = Duration::from_secs(5);

/// One method's figures (see the report for what each includes).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    pub method: String,
    pub in_sync: bool,
    /// From just before the node's start until its store held every note.
    pub secs: Option<f64>,
    pub held_at_end: u64,
    pub expected: u64,
    /// Bytes every node (the returning one included) wrote to memory connections from the
    /// start of the clock until in-sync (or the deadline).
    pub bytes_all: u64,
    /// Of those, bytes the returning node itself wrote.
    pub bytes_own_sent: u64,
    /// Background rate of the other nodes, measured in a quiet span right before.
    pub background_bytes_per_sec: f64,
    /// `bytes_all` minus background rate × the measured seconds.
    pub bytes_net: f64,
    /// Seconds until the method's work was over (starling: every author subscribed, no
    /// catch-up in flight; naive: every fetch answered), and the bytes up to then.
    pub done_secs: Option<f64>,
    pub bytes_all_at_done: Option<u64>,
    pub bytes_own_sent_at_done: Option<u64>,
    /// Bytes all nodes wrote in the [`TAIL`] after the watch ended.
    pub tail_bytes: u64,
    /// Seconds until the node had a live subscription for every followed author
    /// (starling's method only).
    pub all_subscribed_secs: Option<f64>,
    /// starling's own catch-up counters from `status` (starling's method only).
    pub catch_up: Option<CatchUpTotals>,
    /// Where the node's PeerId ranks among the followed authors' home sets.
    pub ranks: Option<crate::catchup::world::Ranks>,
    /// Authors the node kept as a home-set member when the watch ended (`status`).
    pub home_for_at_end: Option<usize>,
    /// The naive method's own counters.
    pub naive: Option<crate::catchup::naive::NaiveFigures>,
    pub notes: Vec<String>,
}

/// starling's catch-up counters summed over the run (the node resets them after each
/// summary line, so they are sampled and the drops added back).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CatchUpTotals {
    /// Events reconciliation found missing (counted per member asked).
    pub missing: u64,
    /// Events fetched after reconciliation.
    pub fetched: u64,
    /// Negentropy message bytes sent plus received.
    pub reconcile_bytes: u64,
    pub samples: usize,
}

impl CatchUpTotals {
    fn add(&mut self, last: &mut ProgressStatus, now: ProgressStatus) {
        let fold = |total: &mut u64, last: u64, now: u64| {
            if now < last {
                *total += last;
            }
        };
        fold(&mut self.missing, last.missing, now.missing);
        fold(&mut self.fetched, last.fetched, now.fetched);
        fold(
            &mut self.reconcile_bytes,
            last.reconcile_bytes,
            now.reconcile_bytes,
        );
        *last = now;
        self.samples += 1;
    }

    fn finish(mut self, last: ProgressStatus) -> Self {
        self.missing += last.missing;
        self.fetched += last.fetched;
        self.reconcile_bytes += last.reconcile_bytes;
        self
    }
}

/// What [`watch`] saw.
pub struct Watched {
    pub in_sync_after: Option<Duration>,
    /// (all nodes, the node itself) bytes at in-sync.
    pub bytes_at_sync: Option<(u64, u64)>,
    /// When the method's work was over (see [`Done`]), and the bytes then.
    pub done_after: Option<Duration>,
    pub bytes_at_done: Option<(u64, u64)>,
    /// When the watch ended, and the bytes then.
    pub ended_after: Duration,
    pub bytes_at_end: (u64, u64),
    pub held: u64,
    pub all_subscribed_after: Option<Duration>,
    pub catch_up: CatchUpTotals,
}

/// The followed authors' notes.
pub fn notes_of(authors: &[PublicKey]) -> Filter {
    Filter::new()
        .authors(authors.iter().copied())
        .kind(Kind::TextNote)
}

/// How a watch tells that the method's work is over.
pub enum Done<'a> {
    /// starling: the node's `status` shows a live subscription for each of `follows`
    /// authors (an attempt counts as subscribed only after its reconciliation and
    /// fetches ended) and no catch-up in flight.
    Status(&'a NetRemote, usize),
    /// The naive method: its fetches ended.
    Token(CancellationToken),
}

/// Polls `store` until it holds `expected` notes matching `filter` and the work is
/// [`Done`], or `deadline`, or [`GIVE_UP`] after the work ended without in-sync; `bytes`
/// reads the counters.
pub async fn watch(
    store: &Arc<SqliteStore>,
    filter: &Filter,
    expected: u64,
    (t0, deadline): (Instant, Instant),
    bytes: impl Fn() -> (u64, u64),
    done: Done<'_>,
) -> Watched {
    let mut w = Watched {
        in_sync_after: None,
        bytes_at_sync: None,
        done_after: None,
        bytes_at_done: None,
        ended_after: Duration::ZERO,
        bytes_at_end: (0, 0),
        held: 0,
        all_subscribed_after: None,
        catch_up: CatchUpTotals::default(),
    };
    let mut last_status = Instant::now() - STATUS_EVERY;
    let mut progress = ProgressStatus::default();
    loop {
        if let Ok(n) = store.count(vec![filter.clone()]).await {
            w.held = n;
        }
        if w.held >= expected && w.in_sync_after.is_none() {
            w.in_sync_after = Some(t0.elapsed());
            w.bytes_at_sync = Some(bytes());
        }
        let finished = match &done {
            Done::Token(token) => token.is_cancelled(),
            Done::Status(remote, follows) => {
                let mut finished = false;
                if last_status.elapsed() >= STATUS_EVERY || w.in_sync_after.is_some() {
                    last_status = Instant::now();
                    if let Ok(s) = remote.node_status().await {
                        w.catch_up.add(&mut progress, s.catch_up);
                        let all = s.subscribed >= *follows;
                        if all && w.all_subscribed_after.is_none() {
                            w.all_subscribed_after = Some(t0.elapsed());
                        }
                        finished = all && s.catch_up.in_flight == 0;
                    }
                }
                finished
            }
        };
        if finished && w.done_after.is_none() {
            w.done_after = Some(t0.elapsed());
            w.bytes_at_done = Some(bytes());
        }
        let gave_up = w.done_after.is_some_and(|d| t0.elapsed() >= d + GIVE_UP);
        if (w.in_sync_after.is_some() && w.done_after.is_some())
            || gave_up
            || Instant::now() >= deadline
        {
            w.ended_after = t0.elapsed();
            w.bytes_at_end = bytes();
            w.catch_up = w.catch_up.finish(progress);
            return w;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Fills the figures common to both methods from what the watch saw: bytes up to
/// in-sync (or up to the end of the watch when it never got there) and up to done.
pub fn figures(method: &str, w: &Watched, expected: u64, background: f64) -> Measured {
    let (secs, (all, own)) = match (w.in_sync_after, w.bytes_at_sync) {
        (Some(d), Some(b)) => (d.as_secs_f64(), b),
        _ => (w.ended_after.as_secs_f64(), w.bytes_at_end),
    };
    let done = w.done_after.zip(w.bytes_at_done);
    Measured {
        method: method.to_owned(),
        in_sync: w.in_sync_after.is_some(),
        secs: w.in_sync_after.map(|d| d.as_secs_f64()),
        held_at_end: w.held,
        expected,
        bytes_all: all,
        bytes_own_sent: own,
        background_bytes_per_sec: background,
        bytes_net: all as f64 - background * secs,
        done_secs: done.map(|(d, _)| d.as_secs_f64()),
        bytes_all_at_done: done.map(|(_, (all, _))| all),
        bytes_own_sent_at_done: done.map(|(_, (_, own))| own),
        all_subscribed_secs: w.all_subscribed_after.map(|d| d.as_secs_f64()),
        ..Measured::default()
    }
}

/// starling's own catch-up: R restarted on its directory, timed until its store holds
/// every note of the followed authors.
pub async fn starling(
    world: &mut World,
    expected: u64,
    background: f64,
    timeout: Duration,
) -> Measured {
    let filter = notes_of(&world.authors);
    let others_before = netsim::sent(&world.others);
    let t0 = Instant::now();
    if let Err(e) = world.restart_r().await {
        let mut m = Measured {
            method: "starling catch-up".into(),
            expected,
            ..Measured::default()
        };
        m.notes.push(format!("R did not restart: {e:#}"));
        return m;
    }
    let w = {
        let r: &SimNode = world.r.as_ref().expect("just started");
        let others = &world.others;
        let bytes = || {
            let own = r.traffic.sent();
            (netsim::sent(others) - others_before + own, own)
        };
        let done = Done::Status(r.net.remote.as_ref(), world.authors.len());
        watch(&r.store, &filter, expected, (t0, t0 + timeout), bytes, done).await
    };
    let mut m = figures("starling catch-up", &w, expected, background);
    m.catch_up = Some(w.catch_up);
    m.ranks = Some(world.r_ranks);
    if let Some(r) = world.r.as_ref() {
        m.home_for_at_end = home_for(r).await;
    }
    m.tail_bytes = tail(world.running()).await;
    m
}

/// Authors `node` keeps as a home-set member, from its `status`.
pub async fn home_for(node: &SimNode) -> Option<usize> {
    node.net.remote.node_status().await.ok().map(|s| s.home_for)
}

/// Bytes all `nodes` write in the [`TAIL`].
pub async fn tail(nodes: Vec<&SimNode>) -> u64 {
    let before = netsim::sent(nodes.iter().copied());
    tokio::time::sleep(TAIL).await;
    netsim::sent(nodes.iter().copied()) - before
}

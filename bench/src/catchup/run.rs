//! The catch-up run, phase by phase: start the network and have R follow every author;
//! the notes R receives live; R goes offline and its store is copied; the offline notes,
//! until every outbox drained and every author's notes sit at its whole home set; then,
//! each after a quiet span that gives the background rate, starling's catch-up and the
//! naive since-fetch. Every phase is bounded by its own timeout and the run's deadline;
//! a phase that fails ends the run with what was measured so far.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use starling_net::HomeSettings;
use starling_proto::EventId;
use starling_store::EventStore;

use crate::catchup::cli::Settings;
use crate::catchup::measure::{self, notes_of};
use crate::catchup::naive;
use crate::catchup::posting::{self, now, texts_rng};
use crate::catchup::probe;
use crate::catchup::report::{Replication, Report};
use crate::catchup::world::{self, World};
use crate::netsim;

/// Longest wait for the notes R should receive live before it goes offline.
const LIVE_WAIT: Duration = Duration::from_secs(60);
/// Between two replication checks.
const REPLICA_POLL: Duration = Duration::from_secs(2);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the scenario; errors end it early and are noted in the report.
pub async fn run(s: &Settings, report: &mut Report) {
    let deadline = Instant::now() + s.total_timeout;
    let mut world = None;
    if let Err(e) = scenario(s, report, deadline, &mut world).await {
        eprintln!("ERROR: {e:#}");
        report.notes.push(format!("run ended early: {e:#}"));
    }
    if let Some(mut w) = world {
        w.stop_r().await;
        netsim::stop_all(std::mem::take(&mut w.others), STOP_TIMEOUT).await;
    }
}

/// The run's settings and deadline, shared by its phases.
struct Phase<'a> {
    s: &'a Settings,
    deadline: Instant,
}

impl Phase<'_> {
    /// `limit` from now, or the run's deadline if that is sooner.
    fn by(&self, limit: Duration) -> Instant {
        (Instant::now() + limit).min(self.deadline)
    }
}

async fn scenario(
    s: &Settings,
    report: &mut Report,
    deadline: Instant,
    slot: &mut Option<World>,
) -> Result<()> {
    let p = Phase { s, deadline };
    let mut rng = netsim::rng(s.seed, 1);
    let base: u64 = rng.gen_range(1 << 20..1 << 40);
    let world = slot.insert(set_up(&p, report, &mut rng, base).await?);
    let offline_start = now().saturating_sub(s.offline_secs);
    let held = go_offline(&p, world, report, offline_start).await?;
    let expected = post_offline(&p, world, report, offline_start, &held).await?;

    eprintln!("-- starling's catch-up: settling, then R restarts");
    let rate = settle(world, &p, report).await;
    let timeout = left(p.by(s.sync_timeout));
    let a = measure::starling(world, expected, rate, timeout).await;
    report.print_method(&a);
    report.methods.push(a);
    world.stop_r().await;

    eprintln!("-- naive since-fetch: settling, then the copy starts");
    let rate = settle(world, &p, report).await;
    let mut sr = s.clone();
    sr.sync_timeout = left(p.by(s.sync_timeout));
    let b = naive::method(world, &sr, expected, rate, &mut rng).await;
    report.print_method(&b);
    report.methods.push(b);

    let prober = &world.others[world.extra.min(world.others.len()) - 1];
    let authors: Vec<_> = world.authors.iter().copied().take(probe::LOOKUPS).collect();
    report.lookup = Some(probe::lookups(prober, &world.other_refs(), &authors).await);
    Ok(())
}

/// Starts the network and has R follow every author.
async fn set_up(p: &Phase<'_>, report: &mut Report, rng: &mut StdRng, base: u64) -> Result<World> {
    let s = p.s;
    eprintln!(
        "-- starting {} extra node(s), {} author nodes and R",
        s.extra_nodes, s.authors
    );
    let t = Instant::now();
    let deadline = p.by(s.setup_timeout);
    let world = World::start((s.extra_nodes, s.authors), (s.seed, base), rng, deadline).await?;
    report.setup.start_secs = t.elapsed().as_secs_f64();
    report.setup.lonely = netsim::wait_connected(&world.running(), deadline).await;
    world.follow_all().await?;
    report.setup.subscribed = netsim::wait_subscribed(&[world.r()?], s.authors, deadline).await;
    report.setup.secs = t.elapsed().as_secs_f64();
    if let Some(st) = netsim::statuses(&[world.r()?]).await {
        report.setup.r_home_for = st[0].home_for;
    }
    eprintln!(
        "   {} nodes up in {:.1} s; R subscribed to {}/{} authors after {:.1} s",
        world.others.len() + 1,
        report.setup.start_secs,
        report.setup.subscribed,
        s.authors,
        report.setup.secs
    );
    Ok(world)
}

/// The notes R receives live, then R stops and its store is copied; returns the ids of
/// the followed authors' notes R held when it stopped.
async fn go_offline(
    p: &Phase<'_>,
    world: &mut World,
    report: &mut Report,
    offline_start: u64,
) -> Result<HashSet<[u8; 32]>> {
    let s = p.s;
    if s.pre_events > 0 {
        let plans = posting::plan(
            s.authors,
            s.pre_events,
            offline_start - 3_600,
            offline_start - 60,
            (s.min_text, s.max_text),
            &mut texts_rng(s.seed, 1),
        );
        report.pre = posting::publish(world.author_nodes(), plans).await;
        let want = report.pre.events as u64;
        report.pre_held_live = wait_held(world, want, p.by(LIVE_WAIT)).await?;
        eprintln!(
            "   R received {}/{want} notes live before going offline",
            report.pre_held_live
        );
    }
    let filter = notes_of(&world.authors);
    let keys = world.r()?.store.keys(vec![filter], 1_000_000).await?;
    world.stop_r().await;
    report.store_copy_bytes = world::copy_store(&world.r_dir, &world.copy_dir())?;
    Ok(keys.iter().map(|k| k.id).collect())
}

/// The offline notes, until they sit at every author's home set; returns how many notes
/// R holds once in sync.
async fn post_offline(
    p: &Phase<'_>,
    world: &World,
    report: &mut Report,
    offline_start: u64,
    held: &HashSet<[u8; 32]>,
) -> Result<u64> {
    let s = p.s;
    eprintln!("-- R offline; the authors post");
    let plans = posting::plan(
        s.authors,
        s.events_per_author,
        offline_start,
        now(),
        (s.min_text, s.max_text),
        &mut texts_rng(s.seed, 2),
    );
    report.offline = posting::publish(world.author_nodes(), plans).await;
    let t = Instant::now();
    report.pending_left = netsim::wait_drained(&world.other_refs(), p.by(s.drain_timeout)).await;
    report.drain_secs = t.elapsed().as_secs_f64();
    report.replication = replicated(world, p.by(s.drain_timeout)).await?;
    let r = &report.replication;
    eprintln!(
        "   {} notes posted in {:.1} s; outboxes drained after {:.1} s more ({} pending); copies per author min {} mean {:.2} max {} after {:.1} s",
        report.offline.events, report.offline.secs, report.drain_secs, report.pending_left,
        r.min, r.mean, r.max, r.secs
    );
    let (missing, bytes) = missing_json(world, held).await?;
    report.missing_events = missing;
    report.missing_json_bytes = bytes;
    Ok(held.len() as u64 + missing)
}

/// Settles the network (R down), then measures its background rate over
/// the background span; both go into the report. Returns the rate.
async fn settle(world: &World, p: &Phase<'_>, report: &mut Report) -> f64 {
    let s = p.s;
    let nodes = world.other_refs();
    let quiet = netsim::settle_quiet(&nodes, left(p.by(s.settle_timeout))).await;
    let rate = netsim::background(&nodes, s.background_span).await;
    eprintln!(
        "   {} after {:.1} s; background {:.1} KB/s over {:.0} s",
        if quiet.quiet { "quiet" } else { "NOT QUIET" },
        quiet.secs,
        rate / 1_000.0,
        s.background_span.as_secs_f64()
    );
    report.quiet.push(quiet);
    report.background.push(rate);
    rate
}

/// Waits until R holds `want` of the followed authors' notes; returns how many it held.
async fn wait_held(world: &World, want: u64, deadline: Instant) -> Result<u64> {
    let r = world.r()?;
    let filter = notes_of(&world.authors);
    loop {
        let held = r.store.count(vec![filter.clone()]).await?;
        if held >= want || Instant::now() >= deadline {
            return Ok(held);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every author's notes are whole at `replicas` nodes besides its own (R is
/// offline and not counted); returns the copies per author at the end.
async fn replicated(world: &World, deadline: Instant) -> Result<Replication> {
    let t = Instant::now();
    let replicas = HomeSettings::default().replicas;
    loop {
        let mut copies = Vec::with_capacity(world.authors.len());
        for (j, author) in world.authors.iter().enumerate() {
            let filter = vec![notes_of(std::slice::from_ref(author))];
            let own = world.extra + j;
            let total = world.others[own].store.count(filter.clone()).await?;
            let mut n = 0;
            for (i, node) in world.others.iter().enumerate() {
                if i != own && node.store.count(filter.clone()).await? >= total {
                    n += 1;
                }
            }
            copies.push(n);
        }
        let min = copies.iter().copied().min().unwrap_or(0);
        if min >= replicas || Instant::now() + REPLICA_POLL > deadline {
            return Ok(Replication::new(&copies, t.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(REPLICA_POLL).await;
    }
}

/// The notes R did not hold when it went offline: how many, and their JSON bytes as the
/// authors' own stores keep them.
async fn missing_json(world: &World, held: &HashSet<[u8; 32]>) -> Result<(u64, u64)> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: EventId,
    }
    let (mut events, mut bytes) = (0, 0);
    for (j, author) in world.authors.iter().enumerate() {
        let node = &world.others[world.extra + j];
        let jsons = node
            .store
            .query_json(vec![notes_of(std::slice::from_ref(author)).limit(5_000)])
            .await?;
        for json in jsons {
            let id: Id = serde_json::from_str(&json).context("stored event JSON")?;
            if !held.contains(&id.id.to_bytes()) {
                events += 1;
                bytes += json.len() as u64;
            }
        }
    }
    Ok((events, bytes))
}

/// Time left until `deadline` (zero when it passed).
fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

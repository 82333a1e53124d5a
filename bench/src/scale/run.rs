//! Runs every configuration of a benchmark run, one after another: for each N the seeded
//! graph is drawn once and used by both modes; each (N, mode) starts its own cluster on its
//! own memory ports, sets it up within the setup deadline, measures a short idle window
//! (background traffic), runs the posting window, computes the figures and stops the
//! cluster. Progress goes to stderr; a configuration that fails is reported, not fatal.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scale::cli::{Mode, Settings};
use crate::scale::cluster::{Cluster, Quiet, Setup};
use crate::scale::figures::{self, Figures};
use crate::scale::graph::{Graph, GraphStats};
use crate::scale::posting;
use crate::scale::sys::{cpu_secs, rss_mib};

/// Longest status pass outside setup.
const CENSUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a cluster to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one (N, mode) configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub mode: Mode,
    pub nodes: usize,
    pub graph: GraphStats,
    pub setup: Option<Setup>,
    /// Settling after setup, before the posting window.
    pub settle: Option<Quiet>,
    /// Bytes all nodes sent from the first node's start to the posting window.
    pub setup_bytes: u64,
    /// Live subscriptions summed, and mean peers per node, right before posting.
    pub subscriptions_before_posting: usize,
    pub peers_before_posting: f64,
    pub figures: Option<Figures>,
    /// Whether every expected delivery arrived before the delivery deadline.
    pub delivery_complete: bool,
    pub failed_posts: Vec<String>,
    /// Arrivals a collector missed because it lagged on a node's bus.
    pub lagged: u64,
    /// CPU seconds of the whole process during setup and during the posting window.
    pub cpu_setup_secs: f64,
    pub cpu_window_secs: f64,
    /// Resident memory with the cluster running (after the window), and after it stopped.
    pub rss_running_mib: f64,
    pub rss_after_mib: f64,
    pub error: Option<String>,
}

/// Runs every configuration of `settings`.
pub async fn all(settings: &Settings) -> Vec<RunResult> {
    let mut results = Vec::new();
    let mut base_rng = StdRng::seed_from_u64(settings.seed);
    let base: u64 = base_rng.gen_range(1 << 20..1 << 40);
    let mut index = 0u64;
    for &n in &settings.nodes {
        let mut rng = StdRng::seed_from_u64(settings.seed.wrapping_mul(1_000_003) ^ n as u64);
        let graph = Graph::preferential(n, settings.min_follows, settings.max_follows, &mut rng);
        let s = graph.stats();
        eprintln!(
            "\n== N = {n}: {} follow edges, in-degree max {} / mean {:.2} / median {}, {} author(s) without followers ==",
            s.edges, s.max_in_degree, s.mean_in_degree, s.median_in_degree, s.without_followers
        );
        for &mode in &settings.modes {
            let ports = base + index * 10_000;
            index += 1;
            let post_rng = StdRng::seed_from_u64(settings.seed ^ ((n as u64) << 32));
            let result = one(settings, &graph, mode, ports, post_rng).await;
            summarize(&result);
            results.push(result);
        }
    }
    results
}

/// One configuration.
async fn one(
    settings: &Settings,
    graph: &Graph,
    mode: Mode,
    ports: u64,
    mut rng: StdRng,
) -> RunResult {
    let n = graph.len();
    eprintln!("-- {mode} mode, N = {n}: starting nodes");
    let mut result = RunResult::new(mode, graph);
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let deadline = t0 + settings.setup_timeout;
    let cluster = match Cluster::start(n, ports, mode == Mode::Broadcast, deadline).await {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(format!("start: {e:#}"));
            return result;
        }
    };
    let start_secs = t0.elapsed().as_secs_f64();
    eprintln!("   {n} nodes started in {start_secs:.1} s; setting up");
    let setup = match set_up(&cluster, graph, mode, deadline, start_secs, t0).await {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(format!("setup: {e:#}"));
            cluster.stop(STOP_TIMEOUT).await;
            return result;
        }
    };
    report_setup(&setup, mode);
    result.setup = Some(setup);
    let cpu1 = measure(&cluster, graph, settings, &mut rng, &mut result).await;
    result.cpu_setup_secs = cpu1 - cpu0;
    if !cluster.stop(STOP_TIMEOUT).await {
        result.error = Some(format!(
            "the nodes did not all stop within {STOP_TIMEOUT:?}"
        ));
    }
    result.rss_after_mib = rss_mib();
    result
}

/// Settles the set-up cluster, then runs the posting window and records its figures.
/// Returns the process's CPU seconds when the window began.
async fn measure(
    cluster: &Cluster,
    graph: &Graph,
    settings: &Settings,
    rng: &mut StdRng,
    result: &mut RunResult,
) -> f64 {
    let quiet = cluster.settle_quiet(settings.settle_timeout).await;
    eprintln!(
        "   {} after {:.1} s more: background {:.1} KB/s from all nodes",
        if quiet.quiet { "quiet" } else { "NOT QUIET" },
        quiet.secs,
        quiet.bytes_per_sec / 1_000.0
    );
    let idle_rate = quiet.bytes_per_sec;
    result.settle = Some(quiet);
    if let Ok((subs, peers)) = census(cluster).await {
        eprintln!("   before posting: {subs} subscriptions, {peers:.1} peers per node");
        result.subscriptions_before_posting = subs;
        result.peers_before_posting = peers;
    }
    let cpu1 = cpu_secs();
    let before = cluster.sent();
    result.setup_bytes = before;
    let samples = posting::run(
        cluster,
        graph,
        settings.posts_per_node,
        settings.spread,
        settings.delivery_timeout,
        rng,
    )
    .await;
    let bytes = cluster.sent() - before;
    result.cpu_window_secs = cpu_secs() - cpu1;
    result.rss_running_mib = rss_mib();
    result.delivery_complete = samples.complete;
    result.lagged = samples.lagged;
    result.failed_posts = samples.failed_posts.clone();
    result.figures = Some(figures::compute(graph, &samples, bytes, idle_rate));
    cpu1
}

/// Follow mode: connected, follow lists published, every subscription in place.
/// Broadcast mode: connected, then a few gossipsub heartbeats.
async fn set_up(
    cluster: &Cluster,
    graph: &Graph,
    mode: Mode,
    deadline: Instant,
    start_secs: f64,
    t0: Instant,
) -> anyhow::Result<Setup> {
    let (complete, subscriptions, notes) = match mode {
        Mode::Broadcast => {
            let (complete, notes) = cluster.settle_broadcast(deadline).await?;
            (complete, 0, notes)
        }
        Mode::Follow => {
            let lonely = cluster.wait_connected(deadline).await?;
            cluster.publish_follow_lists(graph).await?;
            let got = cluster
                .wait_subscribed(graph.edge_count(), deadline)
                .await?;
            let mut notes = Vec::new();
            if lonely > 0 {
                notes.push(format!(
                    "{lonely} node(s) had no peer before the follow lists"
                ));
            }
            (got >= graph.edge_count(), got, notes)
        }
    };
    Ok(Setup {
        start_secs,
        total_secs: t0.elapsed().as_secs_f64(),
        complete,
        subscriptions,
        expected_subscriptions: if mode == Mode::Follow {
            graph.edge_count()
        } else {
            0
        },
        mean_peers: census(cluster).await?.1,
        notes,
    })
}

/// Live subscriptions and mean peers per node (a status pass of at most [`CENSUS_TIMEOUT`]).
async fn census(cluster: &Cluster) -> anyhow::Result<(usize, f64)> {
    cluster
        .census(Instant::now() + CENSUS_TIMEOUT)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("the nodes did not answer a status pass in {CENSUS_TIMEOUT:?}")
        })
}

impl RunResult {
    fn new(mode: Mode, graph: &Graph) -> Self {
        RunResult {
            mode,
            nodes: graph.len(),
            graph: graph.stats(),
            setup: None,
            settle: None,
            setup_bytes: 0,
            subscriptions_before_posting: 0,
            peers_before_posting: 0.0,
            figures: None,
            delivery_complete: false,
            failed_posts: Vec::new(),
            lagged: 0,
            cpu_setup_secs: 0.0,
            cpu_window_secs: 0.0,
            rss_running_mib: 0.0,
            rss_after_mib: rss_mib(),
            error: None,
        }
    }
}

fn report_setup(setup: &Setup, mode: Mode) {
    let what = match mode {
        Mode::Follow => format!(
            "subscriptions {}/{}",
            setup.subscriptions, setup.expected_subscriptions
        ),
        Mode::Broadcast => "topic joined".to_owned(),
    };
    eprintln!(
        "   setup {} in {:.1} s: {what}, {:.1} peers per node{}",
        if setup.complete {
            "complete"
        } else {
            "INCOMPLETE"
        },
        setup.total_secs,
        setup.mean_peers,
        setup
            .notes
            .iter()
            .map(|n| format!("; {n}"))
            .collect::<String>()
    );
}

fn summarize(r: &RunResult) {
    if let Some(e) = &r.error {
        eprintln!("   ERROR: {e}");
    }
    let Some(f) = &r.figures else { return };
    let lat = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    eprintln!(
        "   delivered {}/{} ({:.2}%), reach {:.1}%, p50 {}, p99 {}, {:.0} B/delivery ({:.0} net), {:.0} B/node/post ({:.0} net), window {:.1} s, RSS {:.0} MiB, CPU {:.1} s",
        f.delivered,
        f.expected,
        f.delivery_ratio * 100.0,
        f.reach * 100.0,
        lat(f.p50_ms),
        lat(f.p99_ms),
        f.bytes_per_delivery.unwrap_or(f64::NAN),
        f.net_bytes_per_delivery.unwrap_or(f64::NAN),
        f.bytes_per_node_per_post,
        f.net_bytes_per_node_per_post,
        f.window_secs,
        r.rss_running_mib,
        r.cpu_window_secs
    );
    if f.delivered < f.expected {
        eprintln!(
            "   MISSING: {} deliveries, {} follower(s) × {} author(s) involved",
            f.expected - f.delivered,
            f.followers_missing,
            f.authors_missing
        );
    }
}

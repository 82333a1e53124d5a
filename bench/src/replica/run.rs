//! The replica-load run: start N nodes, publish the follow lists of the seeded graph and
//! wait for every subscription, run the posting rounds, wait until every outbox drained
//! and the network settled, then take the census of every node. Each phase is bounded;
//! a phase that fails ends the run with what was measured so far.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::Rng;
use starling_net::sim::SimNode;
use starling_net::HomeSettings;
use starling_proto::{EventBuilder, Keys, Kind, Tag};

use crate::gen::derive_keys;
use crate::graph::Graph;
use crate::netsim;
use crate::replica::census;
use crate::replica::cli::Settings;
use crate::replica::placement;
use crate::replica::posting::{self, Rounds};
use crate::replica::report::Report;
use crate::replica::requests::Requests;

const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Label of the users' keys (seeded, so home sets repeat per seed).
const OWNER_KEYS: u64 = 0x7265_706c_6963_6100;
/// Longest wait for a quiet span after the fixed settling.
const QUIET_LIMIT: Duration = Duration::from_secs(60);

/// Runs the scenario; errors end it early and are noted in the report.
pub async fn run(s: &Settings, requests: &Requests, report: &mut Report) {
    let dir = match tempfile::Builder::new()
        .prefix("starling-replica-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return report.notes.push(format!("no temporary directory: {e}")),
    };
    let mut nodes = Vec::new();
    if let Err(e) = scenario(s, requests, report, dir.path(), &mut nodes).await {
        eprintln!("ERROR: {e:#}");
        report.notes.push(format!("run ended early: {e:#}"));
    }
    netsim::stop_all(nodes, STOP_TIMEOUT).await;
    if s.placement_nodes > 0 {
        eprintln!(
            "-- placement of {} nodes' users, computed",
            s.placement_nodes
        );
        let replicas = HomeSettings::default().replicas;
        let mut rng = netsim::rng(s.seed, 3);
        let shares = &s.reachable_shares;
        let slack = (replicas, census::HOLD_SLACK);
        match placement::simulate(s.placement_nodes, shares, slack, s.seed, &mut rng) {
            Ok(p) => report.placement = p,
            Err(e) => report.notes.push(format!("placement: {e:#}")),
        }
    }
}

async fn scenario(
    s: &Settings,
    requests: &Requests,
    report: &mut Report,
    dir: &std::path::Path,
    slot: &mut Vec<SimNode>,
) -> Result<()> {
    let mut rng = netsim::rng(s.seed, 2);
    let graph = Graph::preferential(s.nodes, s.min_follows, s.max_follows, &mut rng);
    report.graph = Some(graph.stats());
    report.setup.edges = graph.edge_count();
    *slot = set_up(s, &graph, report, dir, &mut rng).await?;
    let nodes: &[SimNode] = slot;
    let sent_before: Vec<u64> = nodes.iter().map(|n| n.traffic.sent()).collect();
    let requests_before = requests.snapshot();
    post_and_settle(s, nodes, &graph, report, &mut rng).await;
    report.sent_posting = netsim::sent(nodes) - sent_before.iter().sum::<u64>();
    report.requests_total = requests.snapshot();
    report.requests_posting = diff(&report.requests_total, &requests_before);
    take_census(nodes, &graph, &sent_before, report).await
}

/// Starts the nodes, publishes the follow lists and waits for every subscription.
async fn set_up(
    s: &Settings,
    graph: &Graph,
    report: &mut Report,
    dir: &std::path::Path,
    rng: &mut StdRng,
) -> Result<Vec<SimNode>> {
    let base: u64 = rng.gen_range(1 << 20..1 << 40);
    let t = Instant::now();
    let deadline = t + s.setup_timeout;
    eprintln!("-- starting {} nodes", s.nodes);
    let owners: Vec<Keys> = (0..s.nodes as u64)
        .map(|i| derive_keys(s.seed, OWNER_KEYS, i))
        .collect::<Result<_>>()?;
    let (nodes, _) = netsim::start_many(&owners, base, dir, rng, deadline).await?;
    let refs: Vec<&SimNode> = nodes.iter().collect();
    report.setup.start_secs = t.elapsed().as_secs_f64();
    report.setup.lonely = netsim::wait_connected(&refs, deadline).await;
    for (i, node) in nodes.iter().enumerate() {
        let tags = graph.follows[i]
            .iter()
            .map(|&a| Tag::public_key(nodes[a].keys.public_key()));
        node.publish(EventBuilder::new(Kind::ContactList, "").tags(tags))
            .await
            .map_err(anyhow::Error::msg)?;
    }
    report.setup.subscribed = netsim::wait_subscribed(&refs, graph.edge_count(), deadline).await;
    report.setup.secs = t.elapsed().as_secs_f64();
    eprintln!(
        "   {} nodes up in {:.1} s; {}/{} subscriptions after {:.1} s",
        s.nodes,
        report.setup.start_secs,
        report.setup.subscribed,
        report.setup.edges,
        report.setup.secs
    );
    Ok(nodes)
}

/// The posting rounds, the wait for every outbox to drain, the fixed settling and a
/// quiet span.
async fn post_and_settle(
    s: &Settings,
    nodes: &[SimNode],
    graph: &Graph,
    report: &mut Report,
    rng: &mut StdRng,
) {
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let rounds = Rounds {
        rounds: s.posts_per_node,
        reply_share: s.reply_share,
        text: (s.min_text, s.max_text),
        gap: s.round_gap,
    };
    let post_deadline = Instant::now() + s.setup_timeout;
    report.posted = posting::run(nodes, graph, &rounds, rng, post_deadline).await;
    let t = Instant::now();
    report.pending_left = netsim::wait_drained(&refs, t + s.drain_timeout).await;
    report.drain_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "   {} posts in {:.1} s; outboxes drained after {:.1} s more ({} pending); settling {:.0} s",
        report.posted.notes + report.posted.replies,
        report.posted.secs,
        report.drain_secs,
        report.pending_left,
        s.settle.as_secs_f64()
    );
    tokio::time::sleep(s.settle).await;
    report.quiet = Some(netsim::settle_quiet(&refs, QUIET_LIMIT).await);
}

/// Every node's figures and every author's copies.
async fn take_census(
    nodes: &[SimNode],
    graph: &Graph,
    sent_before: &[u64],
    report: &mut Report,
) -> Result<()> {
    eprintln!("-- census");
    let refs: Vec<&SimNode> = nodes.iter().collect();
    let statuses = netsim::statuses(&refs)
        .await
        .ok_or_else(|| anyhow::anyhow!("the nodes did not answer a status pass"))?;
    let replicas = HomeSettings::default().replicas;
    let members = census::home_sets(nodes, replicas);
    let range = census::home_sets(nodes, replicas + census::HOLD_SLACK);
    let mut notes = Vec::with_capacity(nodes.len());
    for i in 0..nodes.len() {
        let (mut f, by_author) =
            census::node(i, nodes, graph, (&members, &range), &statuses[i]).await?;
        f.sent_posting = f.sent_total - sent_before[i];
        report.nodes.push(f);
        notes.push(by_author);
    }
    report.copies = census::copies(&notes, graph, &members);
    Ok(())
}

/// `now - before`, per kind.
fn diff(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

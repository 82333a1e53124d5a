//! The churn scenario, shared by the CI churn test and the churn benchmark: N in-process
//! nodes on the memory transport follow each other at random and post in rounds (notes,
//! replies to followees' posts, mentions of anyone) while a fraction of them, authors
//! included, is killed (tasks aborted, as a crash) and restarted on the same directory
//! at random rounds. At the end every node is up again and the scenario waits until
//! - every event that reached a home-set quorum (as its author's outbox records it) is in
//!   the store of every follower of its author, and
//! - every reply and mention is in the store of the user it tags,
//!
//! or until the settle deadline, and reports what was still missing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use starling_proto::{EventBuilder, EventId, Filter, Keys, Kind, PublicKey, Tag};
use starling_store::EventStore;

use crate::sim::SimNode;
use crate::{NetError, NetSettings};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChurnConfig {
    pub nodes: usize,
    /// Followed authors per node.
    pub follows: usize,
    /// Posting rounds; every node that is up posts once per round.
    pub rounds: usize,
    pub round_gap: Duration,
    /// Share of the nodes killed (once each) and restarted during the rounds.
    pub churn: f64,
    /// Rounds a killed node stays down, at most (at least one).
    pub max_down_rounds: usize,
    /// Waiting for the network to settle before the rounds start, at most.
    pub setup: Duration,
    /// Waiting for every delivery after everyone is back, at most.
    pub settle: Duration,
    /// Replies sent after the rounds whose sender is killed once the reply reached the
    /// target's home set and before the (killed) target returns.
    pub orphan_replies: usize,
    pub seed: u64,
    /// Nodes listen on `/memory/{memory_base + i}`.
    pub memory_base: u64,
}

/// What happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChurnReport {
    pub nodes: usize,
    pub follow_edges: usize,
    pub killed: usize,
    pub posts: usize,
    pub replies_and_mentions: usize,
    /// Replies and mentions sent while their target was down.
    pub sent_while_target_down: usize,
    /// Of those, how many had a sender that was itself down when the target came back.
    pub sender_down_at_target_return: usize,
    /// Events that reached their author's home-set quorum.
    pub quorum_events: usize,
    /// (follower, event) pairs that must be delivered: quorum events of followed authors.
    pub expected_deliveries: usize,
    /// Of those, still missing at the end.
    pub missing_deliveries: usize,
    /// Replies and mentions not in their target's store at the end.
    pub missing_replies: usize,
    /// Orphaned replies (see [`ChurnConfig::orphan_replies`]) sent, and how many reached
    /// their returned target while their sender was still down.
    pub orphan_replies: usize,
    pub orphan_replies_arrived: usize,
    /// Seconds from the target's restart until it had the orphaned reply, at most.
    pub orphan_reply_max_secs: Option<f64>,
    /// Seconds from the last restart until nothing was missing (None: deadline hit).
    pub converged_secs: Option<f64>,
    pub setup_secs: f64,
    pub rounds_secs: f64,
    /// Bytes all nodes wrote to memory connections during rounds and settling.
    pub bytes: u64,
    /// A few of the missing items, for the log.
    pub examples: Vec<String>,
}

/// A node slot: its keys and directory persist across kills.
struct Slot {
    keys: Keys,
    dir: PathBuf,
    addr: String,
    node: Option<SimNode>,
    /// Bytes of earlier lives (the counter restarts with each life).
    bytes_before: u64,
}

/// A reply or mention: its id, target slot, and when the target was down.
struct Tagged {
    id: EventId,
    sender: usize,
    target: usize,
    target_down: bool,
}

fn settings(addr: &str, bootstrap: Vec<String>) -> NetSettings {
    NetSettings {
        listen: vec![addr.parse().expect("memory address")],
        bootstrap: bootstrap.iter().filter_map(|a| a.parse().ok()).collect(),
        // Memory addresses cannot be checked by AutoNAT: take them as reachable.
        public: true,
        ..NetSettings::default()
    }
}

/// Runs the scenario in `dir`; `log` hears progress lines.
pub async fn run(
    cfg: &ChurnConfig,
    dir: &Path,
    log: impl Fn(String),
) -> Result<ChurnReport, NetError> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let n = cfg.nodes;
    let mut report = ChurnReport {
        nodes: n,
        ..ChurnReport::default()
    };
    let started = Instant::now();
    let mut slots: Vec<Slot> = (0..n)
        .map(|i| Slot {
            keys: Keys::generate(),
            dir: dir.join(format!("node{i}")),
            addr: format!("/memory/{}", cfg.memory_base + i as u64),
            node: None,
            bytes_before: 0,
        })
        .collect();
    // One after another; each bootstraps from up to three random earlier ones.
    let mut dialable: Vec<String> = Vec::new();
    for slot in slots.iter_mut() {
        let boot: Vec<String> = dialable.choose_multiple(&mut rng, 3).cloned().collect();
        let node = start(slot, boot).await?;
        dialable.push(node.addr().await?.to_string());
        slot.node = Some(node);
    }
    // The follow graph.
    let follows: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            let others: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            others
                .choose_multiple(&mut rng, cfg.follows.min(n - 1))
                .copied()
                .collect()
        })
        .collect();
    report.follow_edges = follows.iter().map(Vec::len).sum();
    for (i, list) in follows.iter().enumerate() {
        let tags = list
            .iter()
            .map(|&a| Tag::public_key(slots[a].keys.public_key()));
        publish(
            &slots[i],
            EventBuilder::new(Kind::ContactList, "").tags(tags),
        )
        .await?;
    }
    wait_subscribed(&slots, report.follow_edges, cfg.setup).await;
    report.setup_secs = started.elapsed().as_secs_f64();
    log(format!(
        "{n} nodes up, {} follow edges, subscriptions settled after {:.1} s",
        report.follow_edges, report.setup_secs
    ));

    // Who goes down when, and for how long.
    let victims: Vec<usize> = {
        let count = ((n as f64) * cfg.churn).round() as usize;
        let all: Vec<usize> = (0..n).collect();
        all.choose_multiple(&mut rng, count).copied().collect()
    };
    report.killed = victims.len();
    let mut down_at: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut up_at: HashMap<usize, Vec<usize>> = HashMap::new();
    for &v in &victims {
        let down = rng.gen_range(1..cfg.rounds.max(2));
        let up = down + rng.gen_range(1..=cfg.max_down_rounds.max(1));
        down_at.entry(down).or_default().push(v);
        up_at.entry(up).or_default().push(v);
    }

    let rounds_started = Instant::now();
    let bytes_at_start = total_bytes(&slots);
    let mut posts: Vec<Vec<EventId>> = vec![Vec::new(); n];
    let mut tagged: Vec<Tagged> = Vec::new();
    // When each slot last came back up (round), to judge "sender down at target return".
    let mut returned_at: HashMap<usize, usize> = HashMap::new();
    for round in 0..cfg.rounds {
        if up_at.contains_key(&round) || down_at.contains_key(&round) {
            log(format!(
                "round {round}: restarting {:?}, killing {:?}",
                up_at.get(&round).cloned().unwrap_or_default(),
                down_at.get(&round).cloned().unwrap_or_default()
            ));
        }
        for &v in up_at.get(&round).into_iter().flatten() {
            restart(&mut slots, v, &mut rng).await?;
            returned_at.insert(v, round);
        }
        for &v in down_at.get(&round).into_iter().flatten() {
            if let Some(node) = slots[v].node.take() {
                slots[v].bytes_before += node.traffic.sent();
                node.kill();
            }
        }
        for i in 0..n {
            if slots[i].node.is_none() {
                continue;
            }
            let kind = rng.gen_range(0..6);
            let (builder, target) = match kind {
                // A reply to a followee's post.
                0 | 1 => {
                    let followee = *follows[i].choose(&mut rng).expect("follows someone");
                    match posts[followee].choose(&mut rng) {
                        Some(parent) => (
                            EventBuilder::new(Kind::TextNote, format!("reply r{round} from {i}"))
                                .tags([
                                    Tag::event(*parent),
                                    Tag::public_key(slots[followee].keys.public_key()),
                                ]),
                            Some(followee),
                        ),
                        None => (note(round, i), None),
                    }
                }
                // A mention of anyone.
                2 => {
                    let t = (i + rng.gen_range(1..n)) % n;
                    (
                        EventBuilder::new(Kind::TextNote, format!("hello r{round} from {i}"))
                            .tags([Tag::public_key(slots[t].keys.public_key())]),
                        Some(t),
                    )
                }
                _ => (note(round, i), None),
            };
            let id = publish(&slots[i], builder).await?;
            report.posts += 1;
            posts[i].push(id);
            if let Some(t) = target {
                tagged.push(Tagged {
                    id,
                    sender: i,
                    target: t,
                    target_down: slots[t].node.is_none(),
                });
            }
        }
        log(format!(
            "round {round}: {} up, {} posts so far",
            slots.iter().filter(|s| s.node.is_some()).count(),
            report.posts
        ));
        tokio::time::sleep(cfg.round_gap).await;
    }
    tagged.extend(orphans(cfg, &mut slots, &posts, &mut rng, &mut report, &log).await?);
    // Everyone back.
    for v in 0..n {
        if slots[v].node.is_none() {
            restart(&mut slots, v, &mut rng).await?;
            returned_at.insert(v, cfg.rounds);
        }
    }
    report.rounds_secs = rounds_started.elapsed().as_secs_f64();
    report.replies_and_mentions = tagged.len();
    report.sent_while_target_down = tagged.iter().filter(|t| t.target_down).count();
    report.sender_down_at_target_return = tagged
        .iter()
        .filter(|t| t.target_down)
        .filter(|t| {
            let back = returned_at.get(&t.target).copied().unwrap_or(cfg.rounds);
            was_down(&down_at, &up_at, t.sender, back, cfg.rounds)
        })
        .count();
    log(format!(
        "rounds over after {:.1} s: every node up again; {} replies and mentions, {} sent while the target was down ({} of them with the sender down when the target returned)",
        report.rounds_secs, report.replies_and_mentions, report.sent_while_target_down, report.sender_down_at_target_return
    ));

    // Settle: wait until nothing is missing.
    let settle_started = Instant::now();
    loop {
        let (expected, missing, missing_replies, examples) =
            check(&slots, &follows, &tagged).await?;
        report.expected_deliveries = expected.1;
        report.quorum_events = expected.0;
        report.missing_deliveries = missing;
        report.missing_replies = missing_replies;
        report.examples = examples;
        if missing == 0 && missing_replies == 0 {
            report.converged_secs = Some(settle_started.elapsed().as_secs_f64());
            break;
        }
        if settle_started.elapsed() > cfg.settle {
            break;
        }
        log(format!(
            "settling {:.0} s: {missing} of {} deliveries and {missing_replies} replies/mentions missing",
            settle_started.elapsed().as_secs_f64(),
            report.expected_deliveries
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    report.bytes = total_bytes(&slots) - bytes_at_start;
    for slot in slots.iter_mut() {
        if let Some(node) = slot.node.take() {
            node.stop().await;
        }
    }
    Ok(report)
}

/// Replies whose sender is gone before their target returns: kill the target, reply to
/// it, wait until the reply reached the target's home-set quorum, kill the sender, restart
/// the target and wait until it has the reply (the sender still down); then restart the
/// sender. The replies are returned to be checked at the end with the others.
async fn orphans(
    cfg: &ChurnConfig,
    slots: &mut [Slot],
    posts: &[Vec<EventId>],
    rng: &mut StdRng,
    report: &mut ChurnReport,
    log: &impl Fn(String),
) -> Result<Vec<Tagged>, NetError> {
    let n = slots.len();
    let mut sent = Vec::new();
    for k in 0..cfg.orphan_replies.min(n / 2) {
        let up: Vec<usize> = (0..n).filter(|&i| slots[i].node.is_some()).collect();
        let pair: Vec<usize> = up.choose_multiple(rng, 2).copied().collect();
        let [target, sender] = pair[..] else {
            break;
        };
        if let Some(node) = slots[target].node.take() {
            node.kill();
        }
        let target_pk = slots[target].keys.public_key();
        let mut tags = vec![Tag::public_key(target_pk)];
        tags.extend(posts[target].last().map(|p| Tag::event(*p)));
        let text = format!("orphaned reply {k} from {sender}");
        let id = publish(
            &slots[sender],
            EventBuilder::new(Kind::TextNote, text).tags(tags),
        )
        .await?;
        report.orphan_replies += 1;
        sent.push(Tagged {
            id,
            sender,
            target,
            target_down: true,
        });
        let reached = poll(Duration::from_secs(30), || async {
            let node = slots[sender].node.as_ref().ok_or(NetError::Stopped)?;
            Ok(node.delivered_to_home(&target_pk).await?.contains(&id))
        })
        .await?;
        if let Some(node) = slots[sender].node.take() {
            node.kill();
        }
        restart(slots, target, rng).await?;
        let back = Instant::now();
        let arrived = poll(Duration::from_secs(60), || async {
            let node = slots[target].node.as_ref().ok_or(NetError::Stopped)?;
            let found = node
                .store
                .keys(vec![Filter::new().id(id)], 1)
                .await
                .map_err(|e| NetError::Store(e.to_string()))?;
            Ok(!found.is_empty())
        })
        .await?;
        let secs = back.elapsed().as_secs_f64();
        if arrived {
            report.orphan_replies_arrived += 1;
            let slowest = report.orphan_reply_max_secs.unwrap_or(0.0).max(secs);
            report.orphan_reply_max_secs = Some(slowest);
        }
        log(format!(
            "orphaned reply {k} {id}: node {sender} -> node {target}: home-set quorum {}, sender killed, target back; {} after {secs:.1} s",
            if reached { "reached" } else { "NOT reached" },
            if arrived { "arrived" } else { "did NOT arrive" }
        ));
        restart(slots, sender, rng).await?;
    }
    Ok(sent)
}

/// Polls `check` every 100 ms until it holds or `limit` passed; whether it held.
async fn poll<F, Fut>(limit: Duration, check: F) -> Result<bool, NetError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<bool, NetError>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await? {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

/// Whether slot `v` was down at round `at` (a slot is down from its kill round until the
/// round it comes back; at most one kill per slot).
fn was_down(
    down_at: &HashMap<usize, Vec<usize>>,
    up_at: &HashMap<usize, Vec<usize>>,
    v: usize,
    at: usize,
    rounds: usize,
) -> bool {
    let find =
        |m: &HashMap<usize, Vec<usize>>| m.iter().find(|(_, vs)| vs.contains(&v)).map(|(r, _)| *r);
    match find(down_at) {
        Some(down) => {
            let up = find(up_at).unwrap_or(rounds).min(rounds);
            down <= at && at < up
        }
        None => false,
    }
}

fn note(round: usize, i: usize) -> EventBuilder {
    EventBuilder::new(Kind::TextNote, format!("note r{round} from {i}"))
}

async fn start(slot: &Slot, bootstrap: Vec<String>) -> Result<SimNode, NetError> {
    SimNode::start(
        &slot.dir,
        slot.keys.clone(),
        settings(&slot.addr, bootstrap),
    )
    .await
}

/// Restarts slot `v`, bootstrapping from up to three live nodes. The killed life's
/// listener closes asynchronously, so listening is retried for a moment.
async fn restart(slots: &mut [Slot], v: usize, rng: &mut StdRng) -> Result<(), NetError> {
    let live: Vec<String> = slots
        .iter()
        .filter_map(|s| {
            let peer = s.node.as_ref()?.net.network().peer_id();
            Some(format!("{}/p2p/{peer}", s.addr))
        })
        .collect();
    let boot: Vec<String> = live.choose_multiple(rng, 3).cloned().collect();
    let mut last = NetError::Timeout;
    for _ in 0..50 {
        match start(&slots[v], boot.clone()).await {
            Ok(node) => {
                slots[v].node = Some(node);
                return Ok(());
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

async fn publish(slot: &Slot, builder: EventBuilder) -> Result<EventId, NetError> {
    let node = slot.node.as_ref().ok_or(NetError::Stopped)?;
    node.publish(builder)
        .await
        .map(|e| e.id)
        .map_err(NetError::Request)
}

fn total_bytes(slots: &[Slot]) -> u64 {
    slots
        .iter()
        .map(|s| s.bytes_before + s.node.as_ref().map_or(0, |n| n.traffic.sent()))
        .sum()
}

/// Waits until the followers have `edges` live subscriptions in all, or `limit` passed.
async fn wait_subscribed(slots: &[Slot], edges: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut held = 0;
        for node in slots.iter().filter_map(|s| s.node.as_ref()) {
            if let Ok(status) = node.net.remote.node_status().await {
                held += status.subscribed;
            }
        }
        if held >= edges {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// ((quorum events, expected deliveries), missing deliveries, missing replies, examples).
async fn check(
    slots: &[Slot],
    follows: &[Vec<usize>],
    tagged: &[Tagged],
) -> Result<((usize, usize), usize, usize, Vec<String>), NetError> {
    let live = |i: usize| slots[i].node.as_ref().ok_or(NetError::Stopped);
    let mut quorum: Vec<HashSet<EventId>> = Vec::with_capacity(slots.len());
    for i in 0..slots.len() {
        quorum.push(live(i)?.quorum_reached().await?.into_iter().collect());
    }
    let held = |i: usize, authors: Vec<PublicKey>| async move {
        let keys = live(i)?
            .store
            .keys(vec![Filter::new().authors(authors)], 1_000_000)
            .await
            .map_err(|e| NetError::Store(e.to_string()))?;
        Ok::<HashSet<EventId>, NetError>(
            keys.iter()
                .map(|k| EventId::from_byte_array(k.id))
                .collect(),
        )
    };
    let (mut expected, mut missing) = (0, 0);
    let mut examples = Vec::new();
    for (f, list) in follows.iter().enumerate() {
        let authors = list.iter().map(|&a| slots[a].keys.public_key()).collect();
        let have = held(f, authors).await?;
        for &a in list {
            for id in &quorum[a] {
                expected += 1;
                if !have.contains(id) {
                    missing += 1;
                    if examples.len() < 5 {
                        examples.push(format!(
                            "node {f} lacks {id} by followed node {a} (peers {} / {}, author {})",
                            live(f)?.net.network().peer_id(),
                            live(a)?.net.network().peer_id(),
                            slots[a].keys.public_key()
                        ));
                    }
                }
            }
        }
    }
    let mut missing_replies = 0;
    for t in tagged {
        let found = live(t.target)?
            .store
            .keys(vec![Filter::new().id(t.id)], 1)
            .await
            .map_err(|e| NetError::Store(e.to_string()))?;
        if found.is_empty() {
            missing_replies += 1;
            if examples.len() < 10 {
                examples.push(format!(
                    "node {} lacks reply/mention {} from node {}",
                    t.target, t.id, t.sender
                ));
            }
        }
    }
    // Where the first missing events are, for the log.
    for example in examples.iter_mut().take(3) {
        let Some(id) = example
            .split_whitespace()
            .nth(3)
            .and_then(|h| EventId::from_hex(h).ok())
        else {
            continue;
        };
        let mut holders = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            let node = slot.node.as_ref().ok_or(NetError::Stopped)?;
            let found = node
                .store
                .keys(vec![Filter::new().id(id)], 1)
                .await
                .map_err(|e| NetError::Store(e.to_string()))?;
            if !found.is_empty() {
                holders.push(i);
            }
        }
        example.push_str(&format!(" (held by nodes {holders:?})"));
    }
    let quorum_events = quorum.iter().map(HashSet::len).sum();
    Ok((
        (quorum_events, expected),
        missing,
        missing_replies,
        examples,
    ))
}

//! Ten real nodes on loopback: follow-mode delivery to a live client subscription,
//! replies reaching the author's node (also after it was offline), catching up after
//! downtime, and fetching an author the node never saw.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, RelayClient, TestNode};
use serde_json::json;

const NODES: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_deliver_follows_replies_and_unknown_authors() {
    let root = tempfile::tempdir().unwrap();
    let boot = TestNode::start(root.path(), "n0", None, true);
    let mut nodes = vec![boot];
    for i in 1..NODES {
        let b = nodes[0].p2p.clone();
        nodes.push(TestNode::start(
            root.path(),
            &format!("n{i}"),
            Some(&b),
            false,
        ));
    }
    // Roles: A follows B; C replies to B; D is unknown to A.
    let (a, b, c, d) = (1, 2, 3, 4);

    // Every role's home record is findable from another node.
    for (from, who) in [(a, b), (c, b), (a, d), (b, c), (d, a)] {
        let npub = nodes[who].npub.clone();
        assert!(
            eventually(Duration::from_secs(60), || nodes[from].finds(&npub)).await,
            "{} cannot find {}'s home record\n{}",
            nodes[from].name,
            nodes[who].name,
            nodes[from].log_tail()
        );
    }

    follow_delivers_live(&nodes, a, b).await;
    let post = reply_reaches_author(&nodes, b, c).await;
    reply_waits_for_offline_author(&mut nodes, b, c, &post).await;
    live_after_author_restart(&nodes, a, b).await;
    follower_catches_up(&mut nodes, a, b).await;
    unknown_author_is_fetched(&nodes, a, d).await;
}

/// A follows B; a client subscribed on A's relay receives B's new post live (through
/// B's home set).
async fn follow_delivers_live(nodes: &[TestNode], a: usize, b: usize) {
    let (na, nb) = (&nodes[a], &nodes[b]);
    na.cli(&["follow", &nb.npub]);
    // The subscription is held by a member of B's home set (here the one reachable
    // node, n0) or by B's node.
    assert!(
        eventually(Duration::from_secs(30), || nodes
            .iter()
            .map(|n| n.status()["network"]["subscribers"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 1)
        .await,
        "A never subscribed for B's posts\n{}",
        na.log_tail()
    );
    let mut client = RelayClient::connect(&na.api).await;
    client
        .req("feed", json!({"authors": [nb.hex], "kinds": [1]}))
        .await;
    let sent = Instant::now();
    let posted = nb.cli_json(&["post", "hello, followers"]);
    let got = client
        .next_event("feed", Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("B's post never reached A's client\n{}", na.log_tail()));
    assert_eq!(got["id"], posted["id"]);
    assert_eq!(got["content"], "hello, followers");
    println!(
        "follow: B's post reached A's client in {:?}",
        sent.elapsed()
    );
}

/// C (who never saw B) fetches B's post by B's npub, replies, and the reply reaches B.
async fn reply_reaches_author(nodes: &[TestNode], b: usize, c: usize) -> String {
    let (nb, nc) = (&nodes[b], &nodes[c]);
    let post = nb.cli_json(&["post", "what do you think?"]);
    let id = post["id"].as_str().unwrap().to_string();
    let mut client = RelayClient::connect(&nc.api).await;
    let found = client
        .req("b", json!({"authors": [nb.hex], "ids": [id]}))
        .await;
    assert_eq!(
        found.len(),
        1,
        "C could not fetch B's post\n{}",
        nc.log_tail()
    );
    let reply = nc.cli_json(&["reply", &id, "I like it"]);
    let reply_id = reply["id"].as_str().unwrap().to_string();
    let mut at_b = RelayClient::connect(&nb.api).await;
    let arrived = at_b
        .req_until("r", json!({"ids": [reply_id]}), 1, Duration::from_secs(10))
        .await;
    assert!(
        !arrived.is_empty(),
        "C's reply never reached B\n{}",
        nc.log_tail()
    );
    id
}

/// With B stopped, C's reply waits in C's outbox and reaches B after B restarts.
async fn reply_waits_for_offline_author(nodes: &mut [TestNode], b: usize, c: usize, post: &str) {
    nodes[b].stop();
    let reply = nodes[c].cli_json(&["reply", post, "are you there?"]);
    let reply_id = reply["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(20), || {
            let s = nodes[c].status();
            s["network"]["outbox"]["pending"].as_u64() >= Some(1)
        })
        .await,
        "the reply is not waiting in C's outbox"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[b].restart();
    let started = Instant::now();
    let mut at_b = RelayClient::connect(&nodes[b].api).await;
    let arrived = at_b
        .req_until("r", json!({"ids": [reply_id]}), 1, Duration::from_secs(90))
        .await;
    assert!(
        !arrived.is_empty(),
        "the reply sent while B was offline never arrived\n{}",
        nodes[c].log_tail()
    );
    println!(
        "outbox: the reply reached B {:?} after B restarted",
        started.elapsed()
    );
}

/// B restarted (in the step before); A's subscription survived it, so B's next post still
/// reaches A's client live.
async fn live_after_author_restart(nodes: &[TestNode], a: usize, b: usize) {
    let (na, nb) = (&nodes[a], &nodes[b]);
    let mut client = RelayClient::connect(&na.api).await;
    client
        .req(
            "after",
            json!({"authors": [nb.hex], "kinds": [1], "limit": 1}),
        )
        .await;
    let posted = nb.cli_json(&["post", "back again"]);
    let got = client
        .next_event("after", Duration::from_secs(15))
        .await
        .unwrap_or_else(|| {
            panic!(
                "B's post after its restart never reached A\n{}",
                nb.log_tail()
            )
        });
    assert_eq!(got["id"], posted["id"]);
}

/// A goes offline, B posts, A comes back and catches up.
async fn follower_catches_up(nodes: &mut [TestNode], a: usize, b: usize) {
    nodes[a].stop();
    let post = nodes[b].cli_json(&["post", "posted while A was away"]);
    nodes[a].restart();
    let mut client = RelayClient::connect(&nodes[a].api).await;
    let caught_up = client
        .req_until(
            "c",
            json!({"ids": [post["id"]]}),
            1,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        !caught_up.is_empty(),
        "A never caught up with B's post\n{}",
        nodes[a].log_tail()
    );
}

/// A's REQ for D, whom A's node never saw, returns D's profile and posts.
async fn unknown_author_is_fetched(nodes: &[TestNode], a: usize, d: usize) {
    let (na, nd) = (&nodes[a], &nodes[d]);
    nd.cli(&["profile", "set", "--name", "dora"]);
    nd.cli(&["post", "first post by D"]);
    nd.cli(&["post", "second post by D"]);
    let mut client = RelayClient::connect(&na.api).await;
    let events = client.req("d", json!({"authors": [nd.hex]})).await;
    let kinds: Vec<u64> = events.iter().filter_map(|e| e["kind"].as_u64()).collect();
    assert!(
        kinds.contains(&0),
        "no profile of D in {events:?}\n{}",
        na.log_tail()
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == 1).count(),
        2,
        "D's posts: {events:?}"
    );
    let profile = events.iter().find(|e| e["kind"] == 0).unwrap();
    assert!(profile["content"].as_str().unwrap().contains("dora"));
}

//! Home sets with real nodes on loopback (all reachable, so all are home-set candidates):
//! an author's posts reach a quorum of its home set; with the author's node down, its
//! followers still get what it posted and a new follower reads its earlier posts; a reply
//! to a user whose node is down reaches that user after it returns, although the sender
//! is down by then.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, RelayClient, TestNode};
use serde_json::{json, Value};

const NODES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_sets_keep_posts_and_inboxes_while_owners_are_away() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = vec![TestNode::start(root.path(), "h0", None, true)];
    for i in 1..NODES {
        let b = nodes[0].p2p.clone();
        nodes.push(TestNode::start(
            root.path(),
            &format!("h{i}"),
            Some(&b),
            true,
        ));
    }
    // Roles: A authors, F follows from the start, G (chosen below) follows later, S
    // replies to T.
    let (a, f, s, t) = (1, 2, 3, 4);
    for (from, who) in [(f, a), (s, t), (t, s)] {
        let npub = nodes[who].npub.clone();
        assert!(
            eventually(Duration::from_secs(60), || nodes[from].finds(&npub)).await,
            "{} cannot find {}",
            nodes[from].name,
            nodes[who].name
        );
    }

    // F follows A; A's posts reach a quorum of A's home set and F.
    nodes[f].cli(&["follow", &nodes[a].npub]);
    let mut at_f = RelayClient::connect(&nodes[f].api).await;
    at_f.req("a", json!({"authors": [nodes[a].hex], "kinds": [1]}))
        .await;
    let first = nodes[a].cli_json(&["post", "first, before going away"]);
    let got = at_f
        .next_event("a", Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("A's post never reached F\n{}", nodes[f].log_tail()));
    assert_eq!(got["id"], first["id"]);
    // F's subscription is at a member of A's home set, never at A's own node.
    assert_eq!(
        nodes[a].status()["network"]["subscribers"].as_u64(),
        Some(0),
        "F subscribed at A's own node instead of A's home set"
    );
    let second = nodes[a].cli_json(&["post", "second, posted right before the node stops"]);
    // The outbox queues an event a few milliseconds after its OK (it gathers them into one
    // commit), so an empty outbox alone may be one that has not seen the second post yet.
    assert!(
        eventually(Duration::from_secs(30), || {
            let status = nodes[a].status();
            outbox_empty(&status) && delivered(&status) >= 2
        })
        .await,
        "A's posts never reached a home-set quorum (delivered {})\n{}",
        delivered(&nodes[a].status()),
        nodes[a].log_tail()
    );
    nodes[a].stop();
    let got = at_f
        .next_event("a", Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("A's second post never reached F\n{}", nodes[f].log_tail()));
    assert_eq!(got["id"], second["id"]);

    // With A down, G follows A and reads A's earlier posts from the home set. G is a node
    // outside A's home set, so it cannot have had them as a member.
    let members = home_set_of(&nodes[f], &nodes[a].npub);
    assert!(!members.is_empty(), "whereis shows no home set for A");
    let g = (0..NODES)
        .find(|&i| ![a, f, s, t].contains(&i) && !members.contains(&peer_of(&nodes[i])))
        .unwrap_or_else(|| {
            let peers: Vec<String> = nodes.iter().map(peer_of).collect();
            panic!("no node outside A's home set {members:?} (nodes {peers:?})")
        });
    let started = Instant::now();
    nodes[g].cli(&["follow", &nodes[a].npub]);
    let mut at_g = RelayClient::connect(&nodes[g].api).await;
    let seen = at_g
        .req_until(
            "g",
            json!({"authors": [nodes[a].hex], "kinds": [1]}),
            2,
            Duration::from_secs(60),
        )
        .await;
    let ids: Vec<&Value> = seen.iter().map(|e| &e["id"]).collect();
    assert!(
        ids.contains(&&first["id"]) && ids.contains(&&second["id"]),
        "with A down, G did not read A's posts from the home set (got {ids:?})\n{}",
        nodes[g].log_tail()
    );
    println!(
        "home set: a new follower read the absent author's posts in {:?}",
        started.elapsed()
    );

    // T posts; S reads it; T goes away; S replies, waits until T's home set has the reply,
    // goes away too; T returns and finds the reply.
    let note = nodes[t].cli_json(&["post", "anyone there?"]);
    let note_id = note["id"].as_str().unwrap().to_string();
    let mut at_s = RelayClient::connect(&nodes[s].api).await;
    // S is outside T's follows: its first REQ fetches T from the network, racing T's own
    // push of the note to its home set (of which S may be a member). A client keeps asking.
    let found = at_s
        .req_until(
            "t",
            json!({"authors": [nodes[t].hex], "ids": [note_id]}),
            1,
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        found.len(),
        1,
        "S cannot read T's note\n{}",
        nodes[s].log_tail()
    );
    nodes[t].stop();
    let reply = nodes[s].cli_json(&["reply", &note_id, "yes, but you are not"]);
    // Pending rows left: only the direct delivery to T's (stopped) node.
    assert!(
        eventually(Duration::from_secs(30), || {
            nodes[s].status()["network"]["outbox"]["pending"].as_u64() == Some(1)
        })
        .await,
        "the reply never reached T's home set\n{}",
        nodes[s].log_tail()
    );
    nodes[s].stop();
    nodes[t].restart();
    let started = Instant::now();
    let mut at_t = RelayClient::connect(&nodes[t].api).await;
    let arrived = at_t
        .req_until(
            "r",
            json!({"ids": [reply["id"]]}),
            1,
            Duration::from_secs(60),
        )
        .await;
    assert!(
        !arrived.is_empty(),
        "T never got the reply sent while it was away\n{}",
        nodes[t].log_tail()
    );
    println!(
        "inbox: T had the reply {:?} after it returned (its sender is down)",
        started.elapsed()
    );
}

/// The PeerIds of `npub`'s home set as `node` sees it.
fn home_set_of(node: &TestNode, npub: &str) -> Vec<String> {
    let found = node.cli_json(&["whereis", npub]);
    found["home_set"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["peer_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn peer_of(node: &TestNode) -> String {
    node.p2p.rsplit('/').next().unwrap_or_default().to_string()
}

fn outbox_empty(status: &Value) -> bool {
    status["network"]["outbox"]["pending"].as_u64() == Some(0)
}

/// Rows the outbox has delivered.
fn delivered(status: &Value) -> u64 {
    status["network"]["outbox"]["delivered"]
        .as_u64()
        .unwrap_or(0)
}

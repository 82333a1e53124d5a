//! The write policy for what peers push (issue 7): a node takes its owner's events,
//! followed authors' events, events addressed to its owner, and the events of authors it
//! keeps as a home-set member up to its quota; everything else is refused with a reason
//! and not stored. Eight in-process nodes on the memory transport, so that for some
//! authors the target node ranks among the closest (it keeps them) and for others not.

mod common;

use std::time::Duration;

use common::{memory_settings, start_in, wait_for};
use starling_net::sim::SimNode;
use starling_net::wire::{Request, RequestBody, ResponseBody};
use starling_proto::{EventBuilder, Filter, FinalizeEvent, Keys, Kind, Tag};
use starling_store::EventStore;

const NODES: u64 = 8;
const QUOTA: u64 = 3;

/// Pushes one event from `from` to `to`; the node's verdict (None: taken).
async fn push(from: &SimNode, to: &SimNode, json: String) -> Option<String> {
    let answer = from
        .net
        .network()
        .request(
            to.net.network().peer_id(),
            vec![to.addr().await.unwrap()],
            Request::new(RequestBody::Push { events: vec![json] }),
        )
        .await
        .expect("push answered");
    match answer.response.body {
        ResponseBody::Ack { mut results } => results.remove(0),
        other => panic!("unexpected answer {other:?}"),
    }
}

fn note(keys: &Keys, text: &str, tags: Vec<Tag>) -> String {
    EventBuilder::new(Kind::TextNote, text)
        .tags(tags)
        .finalize(keys)
        .unwrap()
        .as_json()
}

/// An author `target` ranks at `want(rank)` for.
async fn author_where(target: &SimNode, want: impl Fn(Option<usize>) -> bool) -> Keys {
    for _ in 0..500 {
        let keys = Keys::generate();
        let view = target
            .net
            .network()
            .local_home(keys.public_key())
            .await
            .unwrap();
        if want(view.rank) {
            return keys;
        }
    }
    panic!("no such author among 500 random keys");
}

async fn stored(node: &SimNode, author: &Keys) -> usize {
    node.store
        .query(vec![Filter::new().author(author.public_key())])
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_push_only_what_the_policy_allows() {
    let base = 47_000 + u64::from(std::process::id() % 1000) * 16;
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<SimNode> = Vec::new();
    for i in 0..NODES {
        let mut settings = memory_settings(base, i, true);
        settings.home.quota_events = QUOTA;
        let boot = nodes.first();
        nodes.push(start_in(dirs[i as usize].path(), Keys::generate(), settings, boot).await);
    }
    let (target, pusher) = (&nodes[1], &nodes[2]);
    // Until the target knows the whole network, its ranks mean little.
    assert!(
        wait_for(Duration::from_secs(30), || async {
            target
                .net
                .network()
                .status()
                .await
                .unwrap()
                .dht_routing_peers
                >= NODES as usize - 2
        })
        .await,
        "the target never learned the network"
    );

    // A stranger the target is not home for: refused with the reason, nothing stored.
    let stranger = author_where(target, |r| r.is_none_or(|r| r >= 6)).await;
    let reason = push(pusher, target, note(&stranger, "spam", vec![])).await;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.starts_with("blocked:") && r.contains("follows")),
        "a stranger's post got {reason:?}"
    );
    assert_eq!(stored(target, &stranger).await, 0);

    // The same stranger replying to the target's owner: addressed to the owner, taken.
    let reply = note(
        &stranger,
        "hello",
        vec![Tag::public_key(target.keys.public_key())],
    );
    assert_eq!(push(pusher, target, reply).await, None);

    // An author the target is home for: taken up to the quota, then refused saying so.
    let held = author_where(target, |r| r == Some(0)).await;
    let mut verdicts = Vec::new();
    for i in 0..QUOTA + 2 {
        verdicts.push(push(pusher, target, note(&held, &format!("post {i}"), vec![])).await);
    }
    assert!(
        verdicts[..QUOTA as usize].iter().all(Option::is_none),
        "{verdicts:?}"
    );
    assert!(
        verdicts[QUOTA as usize..]
            .iter()
            .all(|v| v.as_deref().is_some_and(|r| r.contains("quota"))),
        "{verdicts:?}"
    );
    assert_eq!(stored(target, &held).await, QUOTA as usize);

    // Once the owner follows the stranger, the stranger's posts are taken.
    target
        .publish(
            EventBuilder::new(Kind::ContactList, "").tags([Tag::public_key(stranger.public_key())]),
        )
        .await
        .unwrap();
    let followed = wait_for(Duration::from_secs(10), || async {
        push(pusher, target, note(&stranger, "now followed", vec![]))
            .await
            .is_none()
    })
    .await;
    assert!(followed, "a followed author's post was still refused");
    for n in nodes {
        n.stop().await;
    }
}

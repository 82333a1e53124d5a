//! Three in-process nodes over libp2p's memory transport (as the scale benchmark runs
//! them): follow-mode delivery, and the byte counter moves.

mod common;

use std::time::Duration;

use common::Node;
use starling_proto::{EventBuilder, Kind, Tag};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_mode_over_the_memory_transport() {
    let base = 7_000_000 + u64::from(std::process::id());
    let boot = Node::start_on(format!("/memory/{base}").parse().unwrap(), None).await;
    let boot_addr = boot.addr().await;
    let author = Node::start_on(
        format!("/memory/{}", base + 1).parse().unwrap(),
        Some(boot_addr.clone()),
    )
    .await;
    let follower = Node::start_on(
        format!("/memory/{}", base + 2).parse().unwrap(),
        Some(boot_addr),
    )
    .await;

    follower
        .publish(
            EventBuilder::new(Kind::ContactList, "")
                .tags([Tag::public_key(author.keys.public_key())]),
        )
        .await;
    let mut subscribed = false;
    for _ in 0..150 {
        if author.net.remote.node_status().await.unwrap().subscribers == 1 {
            subscribed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        subscribed,
        "the follower never subscribed at the author's node"
    );

    let mut live = follower.bus.subscribe();
    let before = author.traffic.sent();
    let post = author
        .publish(EventBuilder::new(Kind::TextNote, "over memory"))
        .await;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = live.recv().await.unwrap();
            if ev.event.id == post.id {
                return ev;
            }
        }
    })
    .await
    .expect("the post reached the follower");
    assert_eq!(got.event.content, "over memory");
    assert!(author.traffic.sent() > before, "the push was not counted");
}

//! A follower that was down catches up on return from the nodes that served it before,
//! without looking each followed author's home set up in the DHT again: where each author
//! was served is kept in its outbox database across the restart.

mod common;

use std::time::Duration;

use common::{memory_settings, start_in, wait_for};
use starling_net::sim::SimNode;
use starling_proto::{EventBuilder, Filter, Keys, Kind, Tag};
use starling_store::EventStore;

const AUTHORS: usize = 3;
const NOTES_AWAY: usize = 5;

async fn notes_of(node: &SimNode, authors: &[SimNode]) -> usize {
    let filter = Filter::new()
        .authors(authors.iter().map(|a| a.keys.public_key()))
        .kind(Kind::TextNote);
    node.store.query(vec![filter]).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_where_it_was_served() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let base = 7_200_000 + u64::from(std::process::id()) * 16;
    let tmp = tempfile::tempdir().unwrap();
    let boot = start_in(
        &tmp.path().join("boot"),
        Keys::generate(),
        memory_settings(base, 0, true),
        None,
    )
    .await;
    let mut others = Vec::new();
    for i in 1..=(AUTHORS as u64 + 2) {
        let dir = tmp.path().join(format!("n{i}"));
        let s = memory_settings(base, i, true);
        others.push(start_in(&dir, Keys::generate(), s, Some(&boot)).await);
    }
    let authors = &others[..AUTHORS];
    // The follower is a DHT client: it holds no home set, so every lookup it makes after
    // the restart is its own follow or inbox task's.
    let follower_dir = tmp.path().join("follower");
    let follower_keys = Keys::generate();
    let follower_settings = memory_settings(base, 15, false);
    let follower = start_in(
        &follower_dir,
        follower_keys.clone(),
        follower_settings.clone(),
        Some(&boot),
    )
    .await;
    follower
        .publish(
            EventBuilder::new(Kind::ContactList, "")
                .tags(authors.iter().map(|a| Tag::public_key(a.keys.public_key()))),
        )
        .await
        .unwrap();
    let subscribed = wait_for(Duration::from_secs(40), || async {
        follower.net.remote.node_status().await.unwrap().subscribed == AUTHORS
    })
    .await;
    assert!(
        subscribed,
        "the follower never held a subscription for every author"
    );
    follower.stop().await;

    for (i, a) in authors.iter().enumerate() {
        for n in 0..NOTES_AWAY {
            a.publish(EventBuilder::new(Kind::TextNote, format!("away {i}.{n}")))
                .await
                .unwrap();
        }
    }
    let stored = wait_for(Duration::from_secs(30), || async {
        let mut all = true;
        for a in authors {
            all &= a.quorum_reached().await.unwrap().len() >= NOTES_AWAY;
        }
        all
    })
    .await;
    assert!(stored, "the authors' notes never reached their home sets");

    let follower = start_in(&follower_dir, follower_keys, follower_settings, Some(&boot)).await;
    let caught_up = wait_for(Duration::from_secs(30), || async {
        notes_of(&follower, authors).await == AUTHORS * NOTES_AWAY
    })
    .await;
    let have = notes_of(&follower, authors).await;
    assert!(
        caught_up,
        "the follower holds {have} of the {} notes posted while it was away",
        AUTHORS * NOTES_AWAY
    );
    let status = follower.net.network().status().await.unwrap();
    assert!(
        status.home_set_lookups <= 1,
        "the restarted follower looked up {} home sets; only its own inbox's was due \
         (the followed authors' come from where they were served before)",
        status.home_set_lookups
    );
    follower.stop().await;
    for n in others {
        n.stop().await;
    }
    boot.stop().await;
}

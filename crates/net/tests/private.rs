//! NIP-17 private messages between in-process nodes: a gift wrap the owner's client
//! publishes is queued for its recipient (`Remote::send_private`), reaches the
//! recipient's home set while the recipient is down, and arrives when the recipient
//! returns, though the sender is gone by then. No store holds the message's text.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{memory_settings, start_in, wait_for};
use starling_core::{Origin, Remote};
use starling_proto::nip59::{GiftWrapBuilder, UnwrappedGift};
use starling_proto::{EventBuilder, Filter, FinalizeEvent, FinalizeUnsignedEvent, Keys, Kind, Tag};
use starling_store::EventStore;

const TEXT: &str = "meet me at the old mill, bring the map";

/// Whether any file under `dir` contains `needle` (the database, its WAL, everything).
fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(p) = any_file_contains(&path, needle) {
                return Some(p);
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Some(path);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_reaches_an_offline_recipient_after_the_sender_left() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let base = 7_300_000 + u64::from(std::process::id()) * 16;
    let tmp = tempfile::tempdir().unwrap();
    let boot = start_in(
        &tmp.path().join("boot"),
        Keys::generate(),
        memory_settings(base, 0, true),
        None,
    )
    .await;
    let mut members = Vec::new();
    for i in 1..=4 {
        let dir = tmp.path().join(format!("m{i}"));
        members.push(
            start_in(
                &dir,
                Keys::generate(),
                memory_settings(base, i, true),
                Some(&boot),
            )
            .await,
        );
    }
    let (alice_keys, bob_keys) = (Keys::generate(), Keys::generate());
    let alice_dir = tmp.path().join("alice");
    let bob_dir = tmp.path().join("bob");
    let alice = start_in(
        &alice_dir,
        alice_keys.clone(),
        memory_settings(base, 10, true),
        Some(&boot),
    )
    .await;
    let bob = start_in(
        &bob_dir,
        bob_keys.clone(),
        memory_settings(base, 11, true),
        Some(&boot),
    )
    .await;
    let bob_pk = bob_keys.public_key();
    // Let the DHT form before Bob goes away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    bob.stop().await;

    // Alice's client: a kind-14 rumor sealed and wrapped for Bob, and the copy for herself.
    let rumor = EventBuilder::new(Kind::PrivateDirectMessage, TEXT)
        .tags([Tag::public_key(bob_pk)])
        .finalize_unsigned(alice_keys.public_key());
    let to_bob = GiftWrapBuilder::new(bob_pk, rumor.clone())
        .finalize(&alice_keys)
        .unwrap();
    let to_self = GiftWrapBuilder::new(alice_keys.public_key(), rumor)
        .finalize(&alice_keys)
        .unwrap();
    let remote = alice.net.remote.clone();
    for wrap in [&to_bob, &to_self] {
        alice
            .ingest
            .submit(wrap.clone(), Origin::OwnerSession)
            .await
            .unwrap();
        remote.send_private(wrap, &wrap.as_json()).await.unwrap();
    }
    let at_home = wait_for(Duration::from_secs(30), || async {
        alice
            .delivered_to_home(&bob_pk)
            .await
            .unwrap()
            .contains(&to_bob.id)
            && alice.quorum_reached().await.unwrap().contains(&to_self.id)
    })
    .await;
    assert!(
        at_home,
        "the wraps never reached a quorum of Bob's and Alice's home sets"
    );
    alice.stop().await;

    let bob = start_in(
        &bob_dir,
        bob_keys.clone(),
        memory_settings(base, 11, true),
        Some(&boot),
    )
    .await;
    let arrived = wait_for(Duration::from_secs(30), || async {
        let f = Filter::new().kind(Kind::GiftWrap).pubkey(bob_pk);
        !bob.store.query(vec![f]).await.unwrap().is_empty()
    })
    .await;
    assert!(arrived, "the message never reached Bob after he returned");
    let f = Filter::new().kind(Kind::GiftWrap).pubkey(bob_pk);
    let wraps = bob.store.query(vec![f]).await.unwrap();
    assert_eq!(
        wraps.len(),
        1,
        "Bob holds exactly the wrap addressed to him"
    );
    let opened = UnwrappedGift::from_gift_wrap(&bob_keys, &wraps[0]).unwrap();
    assert_eq!(opened.sender, alice_keys.public_key());
    assert_eq!(opened.rumor.content, TEXT);
    assert!(
        UnwrappedGift::from_gift_wrap(&Keys::generate(), &wraps[0]).is_err(),
        "someone else opened Bob's wrap"
    );

    bob.stop().await;
    for m in members {
        m.stop().await;
    }
    boot.stop().await;
    if let Some(path) = any_file_contains(tmp.path(), TEXT.as_bytes()) {
        panic!("{} holds the message's text", path.display());
    }
    let sealed = any_file_contains(tmp.path(), to_bob.id.to_hex().as_bytes());
    assert!(
        sealed.is_some(),
        "the search finds what the stores hold (the wrap's id)"
    );
}

//! A recipient that cannot be reached holds back its rows without a write to any of them:
//! the failed round is recorded once, on the target, which waits with its whole backlog.
//! Rows undelivered for longer than the configured time are given up at a failed round.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{wait_for, Node};
use starling_core::Origin;
use starling_net::NetSettings;
use starling_proto::{Event, EventBuilder, FinalizeEvent, Keys, Kind, Tag};

/// Events the owner sends to the unreachable user.
const EVENTS: usize = 30;

fn open(outbox: &Path) -> Option<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(outbox, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// The failed rounds in a row recorded for `target`, if it has pending rows.
fn target_attempts(outbox: &Path, target: &str) -> Option<i64> {
    open(outbox)?
        .query_row(
            "SELECT attempts FROM outbox_targets WHERE target = ?1",
            [target],
            |r| r.get(0),
        )
        .ok()
}

/// (state, attempts) of each of `target`'s rows.
fn rows(outbox: &Path, target: &str) -> Vec<(i64, i64)> {
    let Some(conn) = open(outbox) else {
        return Vec::new();
    };
    let mut stmt = conn
        .prepare("SELECT state, attempts FROM outbox WHERE target = ?1")
        .unwrap();
    let rows = stmt
        .query_map([target], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn mentions(owner: &Keys, user: &Keys) -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            EventBuilder::new(Kind::TextNote, format!("hello {i}"))
                .tags([Tag::public_key(user.public_key())])
                .finalize(owner)
                .unwrap()
        })
        .collect()
}

/// A node listening on memory address `base` (apart per process), alone in its network
/// (so nobody can tell it where a user's node is), with its settings adjusted by
/// `configure`, after its owner sent [`EVENTS`] notes mentioning a new user; with that
/// user's direct target.
async fn alone_after_mentions(
    base: u64,
    configure: impl FnOnce(&mut NetSettings),
) -> (Node, String) {
    let listen = format!("/memory/{}", base + u64::from(std::process::id()) * 16);
    let node = Node::start_custom(listen.parse().unwrap(), None, configure).await;
    let user = Keys::generate();
    let results = node
        .ingest
        .submit_many(mentions(&node.keys, &user), Origin::Import)
        .await;
    assert!(results.iter().all(|r| r.is_ok()));
    (node, user.public_key().to_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_be_reached_costs_no_row_writes() {
    // (The user's inbox rows are another matter: alone, this node is the whole of the
    // user's home set.)
    let (node, direct) = alone_after_mentions(7_500_000, |_| {}).await;
    let outbox = node.dir.join("outbox.db");
    assert!(
        wait_for(Duration::from_secs(60), || async {
            target_attempts(&outbox, &direct).unwrap_or(0) >= 1
        })
        .await,
        "no failed round recorded for the unreachable user"
    );
    let rows = rows(&outbox, &direct);
    assert_eq!(rows.len(), EVENTS);
    // Pending, and untouched by the failed round.
    assert!(rows.iter().all(|&r| r == (0, 0)), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_give_up_time_are_given_up_at_a_failed_round() {
    let (node, direct) =
        alone_after_mentions(7_600_000, |s| s.outbox.give_up = Duration::ZERO).await;
    let outbox = node.dir.join("outbox.db");
    assert!(
        wait_for(Duration::from_secs(60), || async {
            let rows = rows(&outbox, &direct);
            rows.len() == EVENTS && rows.iter().all(|&(state, _)| state == 2)
        })
        .await,
        "rows of the unreachable user not given up: {:?}",
        rows(&outbox, &direct)
    );
}

//! A burst of the owner's events (an import) is queued for the home set in full, however
//! far the outbox falls behind the bus; and a rescan of the store (after a restart, or
//! when the bus outran the outbox) reaches past one query's worth of events.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{memory_settings, start_in, wait_for};
use starling_core::Origin;
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Timestamp};

/// More than the store answers to one query (5,000).
const EVENTS: usize = 6_500;

fn queued_events(outbox: &Path) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(outbox, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT COUNT(DISTINCT event_id) FROM outbox", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as usize)
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_of_a_burst_is_queued_even_past_one_query() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let keys = Keys::generate();
    let base = 7_400_000 + u64::from(std::process::id()) * 16;
    let node = start_in(&dir, keys.clone(), memory_settings(base, 0, true), None).await;
    let now = Timestamp::now().as_secs();
    let events: Vec<_> = (0..EVENTS)
        .map(|i| {
            EventBuilder::new(Kind::TextNote, format!("imported {i}"))
                .custom_created_at(Timestamp::from(now - 3_000 + (i as u64 % 2_000)))
                .finalize(&keys)
                .unwrap()
        })
        .collect();
    for chunk in events.chunks(1_000) {
        let results = node
            .ingest
            .submit_many(chunk.to_vec(), Origin::Import)
            .await;
        assert!(results.iter().all(|r| r.is_ok()));
    }
    let outbox = dir.join("outbox.db");
    assert!(
        wait_for(Duration::from_secs(60), || async {
            queued_events(&outbox) == EVENTS
        })
        .await,
        "{} of {EVENTS} events queued after the burst",
        queued_events(&outbox)
    );
    node.stop().await;

    // A node whose outbox is gone rescans everything it holds of the owner.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("outbox.db{suffix}")));
    }
    let node = start_in(&dir, keys, memory_settings(base, 0, true), None).await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            queued_events(&outbox) == EVENTS
        })
        .await,
        "{} of {EVENTS} events queued by the rescan",
        queued_events(&outbox)
    );
    node.stop().await;
}

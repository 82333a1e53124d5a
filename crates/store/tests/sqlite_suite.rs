//! The store test suite run against the SQLite backend, plus SQLite-specific checks.

use starling_proto::{Filter, Keys};
use starling_store::test_suite::{event, rendered, TestStore};
use starling_store::{EventStore, SqliteStore, StoreError, StoreOptions};

async fn open_sqlite(options: StoreOptions) -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("events.db"), options).expect("open");
    TestStore {
        store: Box::new(store),
        guard: Box::new(dir),
    }
}

starling_store::store_test_suite!(open_sqlite);

#[tokio::test]
async fn events_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let keys = Keys::generate();
    let e = event(&keys, 1, "durable", 100, vec![]);
    {
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        store
            .save(rendered(std::slice::from_ref(&e)).remove(0))
            .await
            .unwrap();
        store.shutdown().await;
    }
    let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(
        store.query(vec![Filter::new().id(e.id)]).await.unwrap(),
        vec![e]
    );
    assert_eq!(store.stats().await.unwrap().events, 1);
}

#[tokio::test]
async fn a_read_only_store_reads_beside_the_writer_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    assert!(matches!(
        SqliteStore::open_read_only(&path),
        Err(StoreError::Open { .. })
    ));
    let keys = Keys::generate();
    let first = event(&keys, 1, "before", 100, vec![]);
    let second = event(&keys, 1, "after", 101, vec![]);
    let writer = SqliteStore::open(&path, StoreOptions::default()).unwrap();
    writer
        .save(rendered(std::slice::from_ref(&first)).remove(0))
        .await
        .unwrap();
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(
        reader
            .query(vec![Filter::new().author(keys.public_key())])
            .await
            .unwrap(),
        vec![first.clone()]
    );
    // The writer keeps writing while the reader is open, and the reader sees it.
    writer
        .save(rendered(std::slice::from_ref(&second)).remove(0))
        .await
        .unwrap();
    assert_eq!(
        reader
            .query(vec![Filter::new().author(keys.public_key())])
            .await
            .unwrap(),
        vec![second.clone(), first]
    );
    assert!(matches!(
        reader.save(rendered(&[second]).remove(0)).await,
        Err(StoreError::Closed)
    ));
    reader.shutdown().await;
    writer.shutdown().await;
}

//! The store test suite run against the PostgreSQL backend, plus a reopening check.
//! Compiled only with the `postgres-suite` feature; needs the server named by the
//! environment variable `STARLING_TEST_POSTGRES` (a `postgresql://` URL or a libpq
//! `key=value` string), which `scripts/test` starts for its `postgres` stage. Each test
//! works in a fresh schema of its own, dropped when the test ends.

use std::sync::atomic::{AtomicU32, Ordering};

use starling_proto::{Filter, Keys};
use starling_store::postgres::PostgresConfig;
use starling_store::test_suite::{event, rendered, TestStore};
use starling_store::{EventStore, PostgresStore, StoreOptions};

const ENV: &str = "STARLING_TEST_POSTGRES";

/// The server's connection settings; panics when the variable is unset, so that the suite
/// never passes without having run.
fn server() -> PostgresConfig {
    let url = std::env::var(ENV).unwrap_or_else(|_| {
        panic!("{ENV} is not set: it must name a PostgreSQL server for this suite (scripts/test starts one)")
    });
    url.parse()
        .unwrap_or_else(|e| panic!("{ENV} is not a PostgreSQL connection string: {e}"))
}

/// A schema made for one test; dropped (with everything in it) when the test ends.
struct Schema {
    name: String,
}

impl Schema {
    async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "suite_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        admin(&format!("CREATE SCHEMA {name}")).await;
        Self { name }
    }

    /// The server's settings with this schema as the search path.
    fn config(&self) -> PostgresConfig {
        let mut config = server();
        config.options(format!("-c search_path={}", self.name));
        config
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA {} CASCADE", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin(&sql));
        })
        .join()
        .expect("dropping the test schema");
    }
}

/// Runs one statement on a connection of its own.
async fn admin(sql: &str) {
    let (client, connection) = server()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the server in {ENV}: {e}"));
    let io = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = io.await;
}

async fn open_postgres(options: StoreOptions) -> TestStore {
    let schema = Schema::create().await;
    let store = PostgresStore::open_with(schema.config(), options)
        .await
        .expect("open");
    TestStore {
        store: Box::new(store),
        guard: Box::new(schema),
    }
}

starling_store::store_test_suite!(open_postgres);

#[tokio::test]
async fn events_survive_reopening() {
    let schema = Schema::create().await;
    let keys = Keys::generate();
    let e = event(&keys, 1, "durable", 100, vec![]);
    {
        let store = PostgresStore::open_with(schema.config(), StoreOptions::default())
            .await
            .unwrap();
        store
            .save(rendered(std::slice::from_ref(&e)).remove(0))
            .await
            .unwrap();
        // Dropped without `shutdown`: what `save` acknowledged must already be committed.
    }
    let store = PostgresStore::open_with(schema.config(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.query(vec![Filter::new().id(e.id)]).await.unwrap(),
        vec![e]
    );
    assert_eq!(store.stats().await.unwrap().events, 1);
    store.shutdown().await;
}

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

#[tokio::test]
async fn a_failing_save_does_not_sink_the_others() {
    let schema = Schema::create().await;
    let store = PostgresStore::open_with(schema.config(), StoreOptions::default())
        .await
        .unwrap();
    admin(&format!(
        "CREATE FUNCTION {s}.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.json LIKE '%boom%' THEN RAISE EXCEPTION 'boom refused'; END IF;
              RETURN NEW; END $$;
         CREATE TRIGGER refuse_boom BEFORE INSERT ON {s}.event
           FOR EACH ROW EXECUTE FUNCTION {s}.refuse_boom();",
        s = schema.name
    ))
    .await;
    let keys = Keys::generate();
    let events: Vec<_> = ["one", "boom", "three"]
        .iter()
        .enumerate()
        .map(|(i, c)| event(&keys, 1, c, 100 + i as u64, vec![]))
        .collect();
    let mut saves = rendered(&events).into_iter().map(|e| store.save(e));
    // Sent together, so that the writer most likely takes them in one batch.
    let (one, boom, three) = tokio::join!(
        saves.next().unwrap(),
        saves.next().unwrap(),
        saves.next().unwrap()
    );
    assert_eq!(one.unwrap(), starling_store::SaveOutcome::Stored);
    assert!(boom.is_err(), "the refused event was acknowledged");
    assert_eq!(three.unwrap(), starling_store::SaveOutcome::Stored);
    let kept = store
        .query(vec![Filter::new().author(keys.public_key())])
        .await
        .unwrap();
    assert_eq!(kept, vec![events[2].clone(), events[0].clone()]);
    assert_eq!(store.stats().await.unwrap().events, 2);
    store.shutdown().await;
}

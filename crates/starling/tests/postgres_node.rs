//! `starling run` with `[store] backend = "postgres"`: an event published over the relay
//! is acknowledged, read back, lands in the PostgreSQL database (and no SQLite file is
//! made), `starling export` reads it from there, and it is still there after a restart. Compiled only with the `postgres-e2e`
//! feature; needs the server named by `STARLING_TEST_POSTGRES`, which `scripts/test`
//! starts for its `postgres` stage. The node works in a fresh schema, dropped at the end.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{RelayClient, BIN};
use serde_json::json;
use starling_proto::{EventBuilder, FinalizeEvent, FromBech32, Keys, Kind, SecretKey};

const ENV: &str = "STARLING_TEST_POSTGRES";

fn server_url() -> String {
    std::env::var(ENV).unwrap_or_else(|_| {
        panic!("{ENV} is not set: it must name a PostgreSQL server for this test (scripts/test starts one)")
    })
}

/// `url` with `schema` as its search path, in the form the URL is written in.
fn with_schema(url: &str, schema: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-c%20search_path%3D{schema}")
    } else {
        format!("{url} options='-c search_path={schema}'")
    }
}

/// Runs `sql` on the server; returns the first column of the rows as i64 when asked.
async fn admin(sql: &str) -> Vec<i64> {
    let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the server in {ENV}: {e}"));
    let io = tokio::spawn(connection);
    let rows = client.simple_query(sql).await.expect(sql);
    drop(client);
    let _ = io.await;
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
            _ => None,
        })
        .collect()
}

/// `starling run --offline` on `dir`; returns the process and its relay address.
fn run(dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["run", "--offline", "--api", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn starling run");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut api = None;
    for line in lines.by_ref() {
        let line = line.expect("banner");
        if let Some(rest) = line.trim().strip_prefix("relay") {
            api = Some(rest.trim().trim_start_matches("ws://").to_string());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, api.expect("the node printed its relay address"))
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("the node exits");
    assert!(status.success(), "the node did not stop cleanly: {status}");
}

#[tokio::test]
async fn a_node_on_postgres_stores_and_serves_events() {
    let url = server_url();
    let schema = format!("node_{}_{}", std::process::id(), rand_suffix());
    admin(&format!("CREATE SCHEMA {schema}")).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let init = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(init.status.success(), "init failed: {init:?}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let store = format!(
        "backend = \"postgres\"\npostgres_url = {:?}",
        with_schema(&url, &schema)
    );
    assert!(config.contains("backend = \"sqlite\""));
    std::fs::write(
        dir.join("config.toml"),
        config.replace("backend = \"sqlite\"", &store),
    )
    .unwrap();
    let nsec = std::fs::read_to_string(dir.join("owner.nsec")).unwrap();
    let keys = Keys::new(SecretKey::from_bech32(nsec.trim()).unwrap());
    let event = EventBuilder::new(Kind::TextNote, "kept in PostgreSQL")
        .finalize(&keys)
        .unwrap();
    let id = event.id.to_hex();

    let (node, api) = run(&dir);
    let mut relay = RelayClient::connect(&api).await;
    let ok = relay.publish(&serde_json::to_value(&event).unwrap()).await;
    assert_eq!(
        (&ok[0], &ok[1], &ok[2]),
        (&json!("OK"), &json!(id), &json!(true)),
        "{ok}"
    );
    let got = relay.req("by-id", json!({ "ids": [id] })).await;
    assert_eq!(got, vec![serde_json::to_value(&event).unwrap()]);
    stop(node);

    assert!(
        !dir.join("events.db").exists(),
        "the node made a SQLite file"
    );
    let stored = admin(&format!("SELECT count(*) FROM {schema}.event")).await;
    assert_eq!(stored, vec![1], "the event is not in PostgreSQL");

    let export = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(export.status.success(), "export failed: {export:?}");
    let exported = String::from_utf8(export.stdout).unwrap();
    assert_eq!(
        exported.lines().collect::<Vec<_>>(),
        vec![serde_json::to_string(&event).unwrap()]
    );

    let (node, api) = run(&dir);
    let mut relay = RelayClient::connect(&api).await;
    let again = relay.req("after-restart", json!({ "ids": [id] })).await;
    assert_eq!(again.len(), 1, "the event is gone after a restart");
    stop(node);
    admin(&format!("DROP SCHEMA {schema} CASCADE")).await;
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

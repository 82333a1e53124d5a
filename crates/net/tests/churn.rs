//! The churn test (small, for CI): 12 in-process nodes follow each other and post in
//! rounds while 30% of them, authors included, are killed and restarted at random. At
//! the end every event that reached a home-set quorum must be in every follower's store
//! and every reply and mention in its target's store, including those sent while the
//! target was down. The same scenario at 100+ nodes is the churn benchmark
//! (`cargo run --release -p starling-bench --bin churn`).

use std::time::Duration;

use starling_net::sim::churn::{self, ChurnConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_quorum_event_and_reply_arrives_despite_churn() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let seed = std::env::var("CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let cfg = ChurnConfig {
        nodes: 12,
        follows: 4,
        rounds: 8,
        round_gap: Duration::from_millis(1500),
        churn: 0.3,
        max_down_rounds: 3,
        setup: Duration::from_secs(40),
        settle: Duration::from_secs(90),
        orphan_replies: 2,
        seed,
        memory_base: 7_100_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let report = churn::run(&cfg, dir.path(), |line| {
        eprintln!("[churn seed {seed}] {line}")
    })
    .await
    .expect("scenario ran");
    eprintln!("{report:#?}");
    assert_eq!(report.killed, 4, "30% of 12 nodes are killed and restarted");
    assert!(
        report.quorum_events > cfg.nodes * cfg.rounds / 2,
        "most posts reached a quorum"
    );
    assert!(
        report.sent_while_target_down > 0,
        "some replies or mentions were sent to a node that was down"
    );
    assert_eq!(
        (report.missing_deliveries, report.missing_replies),
        (0, 0),
        "every quorum event reaches every follower and every reply its target; still missing: {:?}",
        report.examples
    );
}

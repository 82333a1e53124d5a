//! Runs every phase against one relay: idle memory, ingest over one and over
//! several connections (each into an empty store), then the REQ mix against
//! the big store. A failing phase is recorded and the next one still runs.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::ingest::{self, IngestResult};
use crate::mix::Query;
use crate::node::{Mem, Node};
use crate::query::{self, QueryResult};
use crate::targets::{Prefill, Target};

/// Everything one relay is put through.
pub struct Workload<'a> {
    pub ingest: &'a [String],
    pub store: &'a [String],
    pub store_file: &'a Path,
    pub queries: &'a [Query],
    pub conns: usize,
    pub window: usize,
    pub prefill_conns: usize,
    pub idle: Duration,
    pub limit: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetResult {
    pub name: String,
    pub ingest_1: Option<IngestResult>,
    pub ingest_n: Option<IngestResult>,
    pub prefill: Option<Prefill>,
    pub query: Option<QueryResult>,
    /// The same mix again, the client acknowledging every frame at once.
    pub query_quickack: Option<QueryResult>,
    pub mem_idle: Option<Mem>,
    pub mem_after_ingest: Option<Mem>,
    pub mem_after_query: Option<Mem>,
    pub errors: Vec<String>,
    /// /proc/loadavg when this relay's phases started.
    pub loadavg_at_start: String,
}

/// All phases for `target`.
pub async fn run(target: &Target, w: &Workload<'_>) -> TargetResult {
    let mut r = TargetResult {
        name: target.name().into(),
        ..Default::default()
    };
    r.loadavg_at_start = loadavg();
    eprintln!("== {} (load average {}) ==", r.name, r.loadavg_at_start);
    for conns in [1, w.conns] {
        if let Err(e) = ingest_phase(target, w, conns, &mut r).await {
            eprintln!("  ingest ({conns} conns) FAILED: {e:#}");
            r.errors.push(format!("ingest {conns} conns: {e:#}"));
        }
    }
    if let Err(e) = query_phase(target, w, &mut r).await {
        eprintln!("  REQ phase FAILED: {e:#}");
        r.errors.push(format!("REQ phase: {e:#}"));
    }
    r
}

/// /proc/loadavg, trimmed.
pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.trim().to_owned()
}

fn temp_dir(name: &str) -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("starling-bench-{name}-"))
        .tempdir()?)
}

/// Stop the node; a failure to stop is recorded but does not hide `outcome`,
/// which gets the node's log tail attached when it is an error.
async fn finish(node: Node, outcome: Result<()>, r: &mut TargetResult) -> Result<()> {
    let outcome = outcome.map_err(|e| {
        let tail = node.log_tail();
        if tail.trim().is_empty() {
            e
        } else {
            e.context(format!("node log tail: {}", tail.trim()))
        }
    });
    if let Err(e) = node.stop().await {
        r.errors.push(format!("stop: {e:#}"));
    }
    outcome
}

async fn ingest_phase(
    target: &Target,
    w: &Workload<'_>,
    conns: usize,
    r: &mut TargetResult,
) -> Result<()> {
    let tmp = temp_dir(target.name())?;
    let node = target.start_fresh(tmp.path()).await?;
    let outcome = async {
        if conns == 1 {
            tokio::time::sleep(w.idle).await;
            let mem = node.memory()?;
            eprintln!("  idle (empty store, {:?}): RSS {:.1} MiB, HWM {:.1} MiB", w.idle, mem.rss_mib(), mem.hwm_mib());
            r.mem_idle = Some(mem);
        }
        let res = ingest::run(&node.url, w.ingest, conns, w.window, w.limit, Some(node.pid)).await?;
        eprintln!(
            "  ingest {conns} conn(s): {:.0} events/s ({} accepted, {} rejected, {} missing, {:.2} s)",
            res.events_per_sec, res.accepted, res.rejected, res.missing, res.secs
        );
        for e in &res.errors {
            eprintln!("    {e}");
        }
        if conns == 1 {
            r.ingest_1 = Some(res);
        } else {
            r.ingest_n = Some(res);
            tokio::time::sleep(w.idle).await;
            let mem = node.memory()?;
            eprintln!("  after ingest + idle: RSS {:.1} MiB, HWM {:.1} MiB", mem.rss_mib(), mem.hwm_mib());
            r.mem_after_ingest = Some(mem);
        }
        Ok(())
    }
    .await;
    finish(node, outcome, r).await
}

async fn query_phase(target: &Target, w: &Workload<'_>, r: &mut TargetResult) -> Result<()> {
    let tmp = temp_dir(target.name())?;
    eprintln!("  pre-filling store with {} events ...", w.store.len());
    let (node, prefill) = target
        .start_with_store(tmp.path(), w.store_file, w.store, w.prefill_conns, w.limit)
        .await?;
    eprintln!(
        "  pre-fill: {} in {:.1} s ({:.0} events/s) {}",
        prefill.method, prefill.secs, prefill.events_per_sec, prefill.note
    );
    r.prefill = Some(prefill);
    let outcome = async {
        let plain = query::run(&node.url, w.queries, false, w.limit).await?;
        print_query("REQ", &plain);
        r.query = Some(plain);
        let quick = query::run(&node.url, w.queries, true, w.limit).await?;
        print_query("REQ, client TCP_QUICKACK", &quick);
        r.query_quickack = Some(quick);
        tokio::time::sleep(w.idle).await;
        let mem = node.memory()?;
        eprintln!(
            "  after queries + idle: RSS {:.1} MiB, HWM {:.1} MiB",
            mem.rss_mib(),
            mem.hwm_mib()
        );
        r.mem_after_query = Some(mem);
        Ok(())
    }
    .await;
    finish(node, outcome, r).await
}

fn print_query(label: &str, res: &QueryResult) {
    eprintln!(
        "  {label}: {} queries in {:.1} s; overall p50 {:.2} ms, p99 {:.2} ms; {} failures",
        res.overall.count, res.secs, res.overall.p50_ms, res.overall.p99_ms, res.failures
    );
    for e in res.errors.iter().take(5) {
        eprintln!("    {e}");
    }
}

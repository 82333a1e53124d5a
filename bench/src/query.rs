//! Runs the REQ mix one query at a time over one connection, timing each from
//! sending the REQ to receiving its EOSE, and summarises latencies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::SinkExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use crate::mix::{Query, QueryType, TYPES};
use crate::ws::{self, Reply};

/// Longest wait for one query's EOSE.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed queries tolerated before the run is abandoned.
const MAX_FAILURES: usize = 10;

/// p50/p99 of one group of queries, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub label: String,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_events: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub per_type: Vec<Latency>,
    pub overall: Latency,
    pub failures: usize,
    pub errors: Vec<String>,
    /// Events returned by each query, in mix order (for cross-checking relays).
    pub returned: Vec<usize>,
    pub secs: f64,
}

/// One finished query.
struct Sample {
    kind: QueryType,
    ms: f64,
    events: usize,
}

/// Run all queries sequentially against `url`.
/// With `quickack`, the client acknowledges every frame at once (see
/// [`ws::quickack`]).
pub async fn run(
    url: &str,
    queries: &[Query],
    quickack: bool,
    limit: Duration,
) -> Result<QueryResult> {
    let mut sock = ws::connect(url).await?;
    let started = Instant::now();
    let mut samples = Vec::with_capacity(queries.len());
    let mut returned = Vec::with_capacity(queries.len());
    let mut errors = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        if started.elapsed() > limit {
            errors.push(format!(
                "stopped after {i} queries: phase time limit {limit:?}"
            ));
            break;
        }
        match one(&mut sock, i, q, quickack).await {
            Ok(s) => {
                returned.push(s.events);
                samples.push(s);
            }
            Err(e) => {
                returned.push(usize::MAX);
                errors.push(format!("query {i} ({}): {e:#}", q.kind.label()));
                if errors.len() >= MAX_FAILURES {
                    errors.push("too many failures; query run abandoned".into());
                    break;
                }
                sock = ws::connect(url).await?;
            }
        }
    }
    let _ = sock.close(None).await;
    let secs = started.elapsed().as_secs_f64();
    let failures = errors.len();
    Ok(summarise(samples, failures, errors, returned, secs))
}

/// Send one REQ, count its events until EOSE, then CLOSE it.
async fn one(sock: &mut ws::Ws, i: usize, q: &Query, quickack: bool) -> Result<Sample> {
    let sub = format!("q{i}");
    let req = serde_json::json!(["REQ", sub, q.filter]).to_string();
    let t0 = Instant::now();
    sock.send(Message::text(req)).await?;
    let mut events = 0usize;
    loop {
        let left = QUERY_TIMEOUT.saturating_sub(t0.elapsed());
        if quickack {
            ws::quickack(sock);
        }
        let text = ws::next_text(sock, left).await?;
        if let Some(s) = ws::event_sub(&text) {
            if s == sub {
                events += 1;
            }
            if events > 100_000 {
                bail!("more than 100,000 events for one query");
            }
            continue;
        }
        match ws::parse_reply(&text) {
            Reply::Eose { sub: s } if s == sub => break,
            Reply::Closed { sub: s, message } if s == sub => bail!("CLOSED: {message}"),
            Reply::Notice(n) => bail!("NOTICE: {n}"),
            _ => continue,
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let close = serde_json::json!(["CLOSE", sub]).to_string();
    sock.send(Message::text(close)).await?;
    Ok(Sample {
        kind: q.kind,
        ms,
        events,
    })
}

fn summarise(
    samples: Vec<Sample>,
    failures: usize,
    errors: Vec<String>,
    returned: Vec<usize>,
    secs: f64,
) -> QueryResult {
    let mut by_type: BTreeMap<QueryType, Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_type.entry(s.kind).or_default().push(s);
    }
    let per_type = TYPES
        .iter()
        .filter_map(|(t, _)| by_type.get(t).map(|v| latency(t.label(), v)))
        .collect();
    let all: Vec<&Sample> = samples.iter().collect();
    QueryResult {
        per_type,
        overall: latency("overall", &all),
        failures,
        errors,
        returned,
        secs,
    }
}

fn latency(label: &str, samples: &[&Sample]) -> Latency {
    let mut ms: Vec<f64> = samples.iter().map(|s| s.ms).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let events: usize = samples.iter().map(|s| s.events).sum();
    Latency {
        label: label.to_owned(),
        count: ms.len(),
        p50_ms: percentile(&ms, 0.50),
        p99_ms: percentile(&ms, 0.99),
        mean_events: events as f64 / samples.len().max(1) as f64,
    }
}

/// Nearest-rank percentile of sorted values (NaN when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Queries whose event counts differ between two runs of the same mix.
pub fn mismatches(a: &QueryResult, b: &QueryResult) -> usize {
    a.returned
        .iter()
        .zip(&b.returned)
        .filter(|(x, y)| x != y)
        .count()
}

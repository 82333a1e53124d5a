//! Pipelined NIP-01 publishing: events are split among connections, each
//! keeps at most `window` EVENTs unacknowledged, and the run counts
//! `["OK", id, true, ..]` replies. Rate = accepted events / wall time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::node;
use crate::ws::{self, Reply};

/// Longest wait for the next reply before a connection gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames queued before the writer flushes even with window left.
const FLUSH_EVERY: usize = 32;
/// Rejection messages kept for the report.
const KEEP_ERRORS: usize = 5;

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestResult {
    pub conns: usize,
    pub sent: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub missing: usize,
    pub secs: f64,
    pub events_per_sec: f64,
    /// Replies other than OK (e.g. NOTICE), counted but not acknowledgements.
    pub other_replies: usize,
    /// CPU seconds (user + system) the relay process used during the run.
    pub relay_cpu_secs: Option<f64>,
    /// CPU seconds this benchmark process (the load generator) used.
    pub client_cpu_secs: Option<f64>,
    pub errors: Vec<String>,
}

/// One connection's share: framed messages plus the ids they carry.
struct Share {
    frames: Vec<Message>,
    ids: HashSet<String>,
}

#[derive(Default)]
struct ConnOutcome {
    accepted: usize,
    rejected: usize,
    other: usize,
    errors: Vec<String>,
}

/// Publish `events` (NIP-01 event JSON) to `url` over `conns` connections.
pub async fn run(
    url: &str,
    events: &[String],
    conns: usize,
    window: usize,
    limit: Duration,
    relay_pid: Option<u32>,
) -> Result<IngestResult> {
    let shares = split(events, conns)?;
    let mut sockets = Vec::with_capacity(shares.len());
    for _ in 0..shares.len() {
        sockets.push(ws::connect(url).await?);
    }
    let cpu_before = (node::cpu_secs(relay_pid), node::cpu_secs(None));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (sock, share) in sockets.into_iter().zip(shares) {
        tasks.push(tokio::spawn(publish(sock, share, window)));
    }
    let mut result = IngestResult {
        conns,
        sent: events.len(),
        ..Default::default()
    };
    let all = tokio::time::timeout(limit, futures_util::future::join_all(tasks))
        .await
        .map_err(|_| anyhow!("ingest did not finish within {limit:?}"))?;
    result.secs = started.elapsed().as_secs_f64();
    let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    result.relay_cpu_secs = used(cpu_before.0, node::cpu_secs(relay_pid));
    result.client_cpu_secs = used(cpu_before.1, node::cpu_secs(None));
    for outcome in all {
        let o = outcome.map_err(|e| anyhow!("connection task failed: {e}"))?;
        result.accepted += o.accepted;
        result.rejected += o.rejected;
        result.other_replies += o.other;
        for e in o.errors {
            if result.errors.len() < KEEP_ERRORS {
                result.errors.push(e);
            }
        }
    }
    result.missing = result
        .sent
        .saturating_sub(result.accepted + result.rejected);
    result.events_per_sec = result.accepted as f64 / result.secs.max(1e-9);
    Ok(result)
}

fn split(events: &[String], conns: usize) -> Result<Vec<Share>> {
    let per = events.len().div_ceil(conns.max(1)).max(1);
    events
        .chunks(per)
        .map(|chunk| {
            let mut ids = HashSet::with_capacity(chunk.len());
            let mut frames = Vec::with_capacity(chunk.len());
            for e in chunk {
                ids.insert(crate::cache::Meta::parse(e)?.id);
                frames.push(Message::text(format!("[\"EVENT\",{e}]")));
            }
            Ok(Share { frames, ids })
        })
        .collect::<Result<Vec<_>>>()
        .context("frame events")
}

/// Write and read concurrently on one connection; never fails, errors are
/// recorded in the outcome so other connections still count.
async fn publish(sock: ws::Ws, share: Share, window: usize) -> ConnOutcome {
    let (mut sink, mut stream) = sock.split();
    let permits = Arc::new(Semaphore::new(window));
    let Share { frames, mut ids } = share;
    let expected = frames.len();
    let writer = {
        let permits = permits.clone();
        async move {
            for (i, frame) in frames.into_iter().enumerate() {
                if permits.available_permits() == 0 || i % FLUSH_EVERY == 0 {
                    sink.flush().await?;
                }
                tokio::time::timeout(REPLY_TIMEOUT, permits.acquire())
                    .await
                    .map_err(|_| anyhow!("window stayed full for {REPLY_TIMEOUT:?}"))??
                    .forget();
                sink.feed(frame).await?;
            }
            sink.flush().await?;
            Ok::<_, anyhow::Error>(sink)
        }
    };
    let reader = read_acks(&mut stream, &mut ids, expected, &permits);
    let (w, r) = tokio::join!(writer, reader);
    let mut outcome = r;
    match w {
        Ok(mut sink) => {
            let _ = sink.close().await;
        }
        Err(e) => outcome.errors.push(format!("writer: {e:#}")),
    }
    outcome
}

async fn read_acks<S>(
    stream: &mut S,
    ids: &mut HashSet<String>,
    expected: usize,
    permits: &Semaphore,
) -> ConnOutcome
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut o = ConnOutcome::default();
    while o.accepted + o.rejected < expected {
        let text = match ws::next_text(stream, REPLY_TIMEOUT).await {
            Ok(t) => t,
            Err(e) => {
                o.errors.push(format!("reader: {e:#}"));
                break;
            }
        };
        if let Err(e) = count_reply(&text, ids, &mut o, permits) {
            o.other += 1;
            if o.errors.len() < KEEP_ERRORS {
                o.errors.push(format!("{e:#}"));
            }
            if o.other > expected {
                break;
            }
        }
    }
    o
}

fn count_reply(
    text: &str,
    ids: &mut HashSet<String>,
    o: &mut ConnOutcome,
    permits: &Semaphore,
) -> Result<()> {
    match ws::parse_reply(text) {
        Reply::Ok {
            id,
            accepted,
            message,
        } => {
            if !ids.remove(&id) {
                bail!("OK for unknown or repeated id {id}");
            }
            permits.add_permits(1);
            if accepted {
                o.accepted += 1;
            } else {
                o.rejected += 1;
                if o.errors.len() < KEEP_ERRORS {
                    o.errors.push(format!("OK false: {message}"));
                }
            }
            Ok(())
        }
        Reply::Notice(n) => bail!("NOTICE: {n}"),
        Reply::Other(text) => bail!("unexpected reply: {text}"),
        other => bail!("unexpected reply: {other:?}"),
    }
}

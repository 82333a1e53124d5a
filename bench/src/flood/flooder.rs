//! The hostile client: from 127.0.0.2, over `connections` WebSockets to A, it sends junk
//! EVENTs at `events_per_sec` in all (a third with a wrong id, a third correctly hashed
//! but badly signed, a third not JSON at all) and broad REQs at `reqs_per_sec` (each
//! asking for up to 500 notes, closed right after), until stopped. It reads and counts
//! what comes back.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::socket::connect_from;
use crate::ws;

/// What the flooder sent and what came back.
#[derive(Debug, Default, Serialize)]
pub struct FloodCounts {
    pub events_sent: u64,
    pub reqs_sent: u64,
    pub rate_limited: u64,
    pub refused_otherwise: u64,
    pub events_received: u64,
}

#[derive(Default)]
struct Counters {
    events_sent: AtomicU64,
    reqs_sent: AtomicU64,
    rate_limited: AtomicU64,
    refused_otherwise: AtomicU64,
    events_received: AtomicU64,
}

/// 300 junk messages to cycle through.
fn junk() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..100 {
        let keys = Keys::generate();
        let event = EventBuilder::new(Kind::TextNote, format!("junk {i}")).finalize(&keys)?;
        let json = serde_json::to_string(&event)?;
        // Correct id, a signature of something else.
        let sig = event.sig.to_string();
        let bad_sig = format!(
            "{}{}",
            &sig[..10],
            if &sig[10..11] == "0" { "1" } else { "0" }
        ) + &sig[11..];
        out.push(format!(r#"["EVENT",{}]"#, json.replace(&sig, &bad_sig)));
        // An id that is not the hash.
        let id = event.id.to_hex();
        let bad_id = "f".repeat(8) + &id[8..];
        out.push(format!(r#"["EVENT",{}]"#, json.replace(&id, &bad_id)));
        // Not JSON.
        out.push(format!(r#"["EVENT",{{"id":"{id}","pubkey":"#));
    }
    Ok(out)
}

/// Floods `url` from `source` until `stop`.
pub async fn flood(
    url: String,
    source: IpAddr,
    connections: usize,
    events_per_sec: u64,
    reqs_per_sec: u64,
    stop: CancellationToken,
) -> Result<FloodCounts> {
    let junk = Arc::new(junk()?);
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for c in 0..connections {
        let conn = connect_from(&url, source).await?;
        let (mut tx, mut rx) = conn.split();
        let counters_rx = counters.clone();
        let stop_rx = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop_rx.cancelled() => break,
                    msg = rx.next() => msg,
                };
                let Some(Ok(Message::Text(t))) = msg else {
                    if msg.is_none() {
                        break;
                    } else {
                        continue;
                    }
                };
                if ws::event_sub(&t).is_some() {
                    counters_rx.events_received.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let message = match ws::parse_reply(&t) {
                    ws::Reply::Ok {
                        accepted: false,
                        message,
                        ..
                    } => message,
                    ws::Reply::Closed { message, .. } => message,
                    ws::Reply::Notice(message) => message,
                    _ => continue,
                };
                let counter = if message.starts_with("rate-limited") {
                    &counters_rx.rate_limited
                } else {
                    &counters_rx.refused_otherwise
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
        let junk = junk.clone();
        let counters_tx = counters.clone();
        let stop_tx = stop.clone();
        let per_tick_events = events_per_sec as f64 / 100.0 / connections as f64;
        let per_tick_reqs = reqs_per_sec as f64 / 100.0 / connections as f64;
        tasks.push(tokio::spawn(async move {
            // Every 10 ms, this connection's share; fractions carry over.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let (mut ev_due, mut req_due, mut n) = (0.0f64, 0.0f64, 0usize);
            while !stop_tx.is_cancelled() {
                tick.tick().await;
                ev_due += per_tick_events;
                req_due += per_tick_reqs;
                while ev_due >= 1.0 {
                    ev_due -= 1.0;
                    n += 1;
                    let text = junk[(n + c) % junk.len()].clone();
                    if tx.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                    counters_tx.events_sent.fetch_add(1, Ordering::Relaxed);
                }
                while req_due >= 1.0 {
                    req_due -= 1.0;
                    n += 1;
                    let req = format!(r#"["REQ","f{n}",{{"kinds":[1],"limit":500}}]"#);
                    let close = format!(r#"["CLOSE","f{n}"]"#);
                    if tx.send(Message::Text(req.into())).await.is_err()
                        || tx.send(Message::Text(close.into())).await.is_err()
                    {
                        return;
                    }
                    counters_tx.reqs_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    stop.cancelled().await;
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(FloodCounts {
        events_sent: get(&counters.events_sent),
        reqs_sent: get(&counters.reqs_sent),
        rate_limited: get(&counters.rate_limited),
        refused_otherwise: get(&counters.refused_otherwise),
        events_received: get(&counters.events_received),
    })
}

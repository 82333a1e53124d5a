//! Verification ceiling: how many events per second this machine can check
//! with the `nostr` crate's `Event::verify()` (id hash + BIP340 schnorr), on
//! one thread and on one thread per core. No network, no storage.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nostr::prelude::Event;
use serde::Serialize;

/// Minimum time each measurement runs for (it loops over the events).
const MIN_RUN: Duration = Duration::from_secs(2);
/// Upper bound on passes over the event set per measurement.
const MAX_PASSES: usize = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    pub single_thread_eps: f64,
    pub all_cores_eps: f64,
    pub threads: usize,
}

/// Parse pre-signed events and measure both rates.
pub fn measure(lines: &[String]) -> Result<Ceiling> {
    let events: Vec<Event> = lines
        .iter()
        .map(|l| Event::from_json(l).context("parse pre-signed event"))
        .collect::<Result<_>>()?;
    if events.is_empty() {
        bail!("no events to verify");
    }
    let single_thread_eps = run_threads(&events, 1)?;
    let threads = crate::gen::cores();
    let all_cores_eps = run_threads(&events, threads)?;
    Ok(Ceiling {
        single_thread_eps,
        all_cores_eps,
        threads,
    })
}

/// Verify events on `threads` threads (disjoint slices) for at least
/// [`MIN_RUN`]; returns verified events per second over all threads.
fn run_threads(events: &[Event], threads: usize) -> Result<f64> {
    let chunk = events.len().div_ceil(threads).max(1);
    let started = Instant::now();
    let total = std::thread::scope(|s| {
        let handles: Vec<_> = events
            .chunks(chunk)
            .map(|part| s.spawn(move || verify_loop(part)))
            .collect();
        let mut total = 0u64;
        for h in handles {
            total += h.join().map_err(|_| anyhow!("verify thread panicked"))??;
        }
        Ok::<_, anyhow::Error>(total)
    })?;
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn verify_loop(events: &[Event]) -> Result<u64> {
    let started = Instant::now();
    let mut verified = 0u64;
    for _ in 0..MAX_PASSES {
        for e in events {
            e.verify()
                .map_err(|err| anyhow!("pre-signed event failed to verify: {err}"))?;
            verified += 1;
        }
        if started.elapsed() >= MIN_RUN {
            break;
        }
    }
    Ok(verified)
}

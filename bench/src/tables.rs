//! The markdown tables of the report: side-by-side summary, verification
//! ceiling, per-query-type latency, and notes (failures, mismatches).

use std::fmt::Write as _;

use crate::ingest::IngestResult;
use crate::query::{Latency, QueryResult};
use crate::report::{group, mem_text, num, ratio, Report};
use crate::runner::TargetResult;

fn ingest1(t: Option<&TargetResult>) -> Option<f64> {
    t?.ingest_1.as_ref().map(|i| i.events_per_sec)
}

fn ingest_n(t: Option<&TargetResult>) -> Option<f64> {
    t?.ingest_n.as_ref().map(|i| i.events_per_sec)
}

fn overall(t: Option<&TargetResult>) -> Option<&Latency> {
    t?.query.as_ref().map(|q| &q.overall)
}

fn overall_quickack(t: Option<&TargetResult>) -> Option<&Latency> {
    t?.query_quickack.as_ref().map(|q| &q.overall)
}

/// starling vs nostr-rs-relay, one row per headline figure.
pub fn summary(s: &mut String, r: &Report) {
    let (a, b) = (r.starling.as_ref(), r.nrr.as_ref());
    let conns = r.settings.conns;
    let _ = writeln!(s, "## Side by side\n");
    let _ = writeln!(
        s,
        "| metric | starling | nostr-rs-relay | starling / nrr | target |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    let row =
        |s: &mut String, name: &str, x: Option<f64>, y: Option<f64>, d: usize, target: &str| {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {target} |",
                num(x, d),
                num(y, d),
                ratio(x, y)
            );
        };
    row(
        s,
        "ingest, 1 connection (events/s)",
        ingest1(a),
        ingest1(b),
        0,
        "≥ 3x",
    );
    row(
        s,
        &format!("ingest, {conns} connections (events/s)"),
        ingest_n(a),
        ingest_n(b),
        0,
        "≥ 3x",
    );
    row(
        s,
        "REQ p50, all queries (ms)",
        overall(a).map(|l| l.p50_ms),
        overall(b).map(|l| l.p50_ms),
        2,
        "≤ 0.5x",
    );
    row(
        s,
        "REQ p99, all queries (ms)",
        overall(a).map(|l| l.p99_ms),
        overall(b).map(|l| l.p99_ms),
        2,
        "",
    );
    let (qa, qb) = (overall_quickack(a), overall_quickack(b));
    row(
        s,
        "REQ p50, client TCP_QUICKACK (ms)",
        qa.map(|l| l.p50_ms),
        qb.map(|l| l.p50_ms),
        2,
        "≤ 0.5x",
    );
    row(
        s,
        "REQ p99, client TCP_QUICKACK (ms)",
        qa.map(|l| l.p99_ms),
        qb.map(|l| l.p99_ms),
        2,
        "",
    );
    let prefill = |t: Option<&TargetResult>| t.and_then(|t| t.prefill.as_ref()).map(|p| p.secs);
    row(s, "store pre-fill (s)", prefill(a), prefill(b), 1, "");
    let mem = |s: &mut String,
               name: &str,
               f: fn(&TargetResult) -> Option<crate::node::Mem>,
               target: &str| {
        let x = a.and_then(f);
        let y = b.and_then(f);
        let rx = x.map(|m| m.rss_mib());
        let ry = y.map(|m| m.rss_mib());
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {target} |",
            mem_text(x),
            mem_text(y),
            ratio(rx, ry)
        );
    };
    mem(s, "RSS idle, empty store (MiB)", |t| t.mem_idle, "≤ 25 MiB");
    mem(
        s,
        "RSS after ingest + idle (MiB)",
        |t| t.mem_after_ingest,
        "",
    );
    mem(
        s,
        "RSS after REQs on big store + idle (MiB)",
        |t| t.mem_after_query,
        "",
    );
    s.push('\n');
}

/// Raw verification rates and starling's ingest as a share of them.
pub fn ceiling(s: &mut String, r: &Report) {
    let Some(c) = &r.ceiling else {
        return;
    };
    let a = r.starling.as_ref();
    let conns = r.settings.conns;
    let _ = writeln!(
        s,
        "## Verification ceiling (`Event::verify()`: id hash + BIP340)\n"
    );
    let _ = writeln!(s, "| ceiling | events/s | starling ingest 1 conn, % of it | starling ingest {conns} conns, % of it |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let pct = |x: Option<f64>, ceil: f64| match x {
        Some(x) if ceil > 0.0 => format!("{:.0}%", 100.0 * x / ceil),
        _ => "—".into(),
    };
    for (name, eps) in [
        ("single thread".to_owned(), c.single_thread_eps),
        (
            format!("all cores ({} threads)", c.threads),
            c.all_cores_eps,
        ),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} |",
            num(Some(eps), 0),
            pct(ingest1(a), eps),
            pct(ingest_n(a), eps)
        );
    }
    let _ = writeln!(s, "\nTarget: starling ingest ≥ 60% of the ceiling. The load generator runs on the same cores.\n");
}

/// Which of the two query runs a table shows.
pub type Pick = fn(&TargetResult) -> Option<&QueryResult>;

/// CPU used by the relay and by the load generator during each ingest run.
pub fn ingest_cpu(s: &mut String, r: &Report) {
    let runs: Vec<(&str, &IngestResult)> = [r.starling.as_ref(), r.nrr.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|t| {
            [&t.ingest_1, &t.ingest_n]
                .into_iter()
                .flatten()
                .map(move |i| (t.name.as_str(), i))
        })
        .collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Where ingest CPU goes\n");
    let _ = writeln!(
        s,
        "| run | events/s | relay CPU µs / event | relay cores busy | bench client cores busy |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (name, i) in runs {
        let per_event = i.relay_cpu_secs.map(|c| c * 1e6 / i.accepted.max(1) as f64);
        let busy = |c: Option<f64>| c.map(|c| c / i.secs.max(1e-9));
        let _ = writeln!(
            s,
            "| {name}, {} conn(s) | {} | {} | {} | {} |",
            i.conns,
            num(Some(i.events_per_sec), 0),
            num(per_event, 1),
            num(busy(i.relay_cpu_secs), 2),
            num(busy(i.client_cpu_secs), 2),
        );
    }
    if let Some(c) = &r.ceiling {
        let _ = writeln!(
            s,
            "\nOne `Event::verify()` costs {:.1} µs of CPU here (single-thread ceiling).\n",
            1e6 / c.single_thread_eps.max(1e-9)
        );
    }
}

/// p50/p99 per query type for both relays, for the run `pick` selects.
pub fn per_query(s: &mut String, r: &Report, title: &str, pick: Pick) {
    let a = r.starling.as_ref().and_then(pick);
    let b = r.nrr.as_ref().and_then(pick);
    let Some(rows) = a.or(b).map(|q| &q.per_type) else {
        return;
    };
    let _ = writeln!(
        s,
        "## {title} ({} store events, ms)\n",
        group(r.settings.store_events as u64)
    );
    let _ = writeln!(s, "| query | n | starling p50 | starling p99 | nrr p50 | nrr p99 | p50 ratio | mean events starling / nrr |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---|");
    let find = |q: Option<&QueryResult>, label: &str| -> Option<Latency> {
        let q = q?;
        if label == "overall" {
            return Some(q.overall.clone());
        }
        q.per_type.iter().find(|l| l.label == label).cloned()
    };
    let labels = rows
        .iter()
        .map(|l| l.label.clone())
        .chain(["overall".to_owned()]);
    for label in labels {
        let (x, y) = (find(a, &label), find(b, &label));
        let n = x.as_ref().or(y.as_ref()).map(|l| l.count).unwrap_or(0);
        let _ = writeln!(
            s,
            "| {label} | {n} | {} | {} | {} | {} | {} | {} / {} |",
            num(x.as_ref().map(|l| l.p50_ms), 2),
            num(x.as_ref().map(|l| l.p99_ms), 2),
            num(y.as_ref().map(|l| l.p50_ms), 2),
            num(y.as_ref().map(|l| l.p99_ms), 2),
            ratio(x.as_ref().map(|l| l.p50_ms), y.as_ref().map(|l| l.p50_ms)),
            num(x.as_ref().map(|l| l.mean_events), 1),
            num(y.as_ref().map(|l| l.mean_events), 1),
        );
    }
    s.push('\n');
}

/// Failures, rejected events, result mismatches and free-form notes.
pub fn notes(s: &mut String, r: &Report) {
    let mut lines: Vec<String> = r.notes.clone();
    if let Some(m) = r.query_count_mismatches {
        lines.push(format!(
            "queries whose event count differs between starling and nostr-rs-relay: {m}"
        ));
    }
    for t in [r.starling.as_ref(), r.nrr.as_ref()].into_iter().flatten() {
        lines.push(format!(
            "{} phases started at load average {}",
            t.name, t.loadavg_at_start
        ));
        for (what, i) in [
            ("ingest 1 conn", &t.ingest_1),
            ("ingest multi-conn", &t.ingest_n),
        ] {
            if let Some(i) = i {
                if i.other_replies > 0 {
                    lines.push(format!(
                        "{} {what}: {} replies other than OK, e.g. {}",
                        t.name,
                        i.other_replies,
                        i.errors.join("; ")
                    ));
                }
                if i.accepted != i.sent {
                    lines.push(format!(
                        "{} {what}: {} of {} accepted, {} rejected, {} unanswered: {}",
                        t.name,
                        i.accepted,
                        i.sent,
                        i.rejected,
                        i.missing,
                        i.errors.join("; ")
                    ));
                }
            }
        }
        if let Some(p) = &t.prefill {
            lines.push(format!(
                "{} store pre-fill: {}, {:.1} s, {:.0} events/s {}",
                t.name, p.method, p.secs, p.events_per_sec, p.note
            ));
        }
        if let Some(q) = &t.query {
            lines.extend(
                q.errors
                    .iter()
                    .take(5)
                    .map(|e| format!("{} REQ: {e}", t.name)),
            );
        }
        lines.extend(t.errors.iter().map(|e| format!("{} FAILED: {e}", t.name)));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Notes\n");
    for l in lines {
        let _ = writeln!(s, "- {}", l.replace('\n', " "));
    }
    s.push('\n');
}

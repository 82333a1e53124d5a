//! The scale benchmark's report: the run's settings, machine and source state, one row per
//! configuration, and the targets (met / not met, never asserted), as a markdown text that
//! is printed and written to `<out>.md`, and as JSON in `<out>.json`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::scale::cli::{Mode, Settings};
use crate::scale::posting::GRACE;
use crate::scale::run::RunResult;
use crate::scale::sys::Machine;

/// p99 latency target.
const P99_TARGET_MS: f64 = 1_000.0;
/// "Flat": bytes per delivered event at the largest N within this factor of the smallest N's.
const FLAT_FACTOR: f64 = 1.25;

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub command: String,
    /// Workspace commit and whether `crates/` had uncommitted changes when the run started.
    pub source: String,
    pub machine: Machine,
    pub settings: Settings,
    pub runs: Vec<RunResult>,
    pub targets: Vec<Target>,
}

/// One target and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

impl Report {
    pub fn new(settings: &Settings, machine: Machine, runs: Vec<RunResult>) -> Self {
        let targets = targets(&runs);
        Report {
            date: shell(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
            command: settings.command.clone(),
            source: source_state(),
            machine,
            settings: settings.clone(),
            runs,
            targets,
        }
    }
}

fn targets(runs: &[RunResult]) -> Vec<Target> {
    let mut out = Vec::new();
    let max_n = runs.iter().map(|r| r.nodes).max().unwrap_or(0);
    for mode in [Mode::Follow, Mode::Broadcast] {
        let of_mode: Vec<&RunResult> = runs.iter().filter(|r| r.mode == mode).collect();
        if of_mode.is_empty() {
            continue;
        }
        let largest = of_mode.iter().find(|r| r.nodes == max_n);
        let ratio = largest
            .and_then(|r| r.figures.as_ref())
            .map(|f| f.delivery_ratio);
        out.push(Target {
            what: format!("{mode}: 100% delivery at N = {max_n}"),
            measured: ratio.map_or("not measured".into(), |v| format!("{:.2}%", v * 100.0)),
            met: ratio.is_some_and(|v| v >= 1.0),
        });
        let p99s: Vec<Option<f64>> = of_mode
            .iter()
            .map(|r| r.figures.as_ref().and_then(|f| f.p99_ms))
            .collect();
        let worst = p99s
            .iter()
            .flatten()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        out.push(Target {
            what: format!("{mode}: p99 < 1 s at every N"),
            measured: worst.map_or("not measured".into(), |v| format!("worst p99 {v:.0} ms")),
            met: p99s.iter().all(|p| p.is_some_and(|v| v < P99_TARGET_MS)),
        });
        out.push(flatness(mode, &of_mode, false));
        out.push(flatness(mode, &of_mode, true));
    }
    out
}

/// Bytes per delivered event at the largest N against the smallest N: all bytes in the
/// window, or (`net`) with the background rate measured before posting taken off.
fn flatness(mode: Mode, runs: &[&RunResult], net: bool) -> Target {
    let per = |r: &&RunResult| {
        r.figures.as_ref().and_then(|f| {
            if net {
                f.net_bytes_per_delivery
            } else {
                f.bytes_per_delivery
            }
        })
    };
    let small = runs.iter().min_by_key(|r| r.nodes);
    let large = runs.iter().max_by_key(|r| r.nodes);
    let reading = if net {
        "net of background"
    } else {
        "all bytes"
    };
    let what =
        format!("{mode}: bytes per delivered event ({reading}) flat as N grows (≤ {FLAT_FACTOR}x)");
    match (small.and_then(per), large.and_then(per), small, large) {
        (Some(a), Some(b), Some(s), Some(l)) if s.nodes < l.nodes => Target {
            what,
            measured: format!(
                "{:.2}x from N = {} to N = {} ({} → {} B)",
                b / a,
                s.nodes,
                l.nodes,
                group(a),
                group(b)
            ),
            met: b / a <= FLAT_FACTOR,
        },
        _ => Target {
            what,
            measured: "needs two sizes measured".into(),
            met: false,
        },
    }
}

/// The report as markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Network scale: follow mode vs broadcast mode\n");
    let _ = writeln!(s, "- date: {}", r.date);
    let _ = writeln!(s, "- command: `{}`", r.command);
    let _ = writeln!(s, "- source: {}", r.source);
    let m = &r.machine;
    let _ = writeln!(
        s,
        "- machine: {} ({} cores, {} MiB), load average at start {}",
        m.cpu, m.cores, m.mem_total_mib, m.loadavg_at_start
    );
    let st = &r.settings;
    let _ = writeln!(
        s,
        "- settings: {} post(s) per node spread over {:.1} s, {}-{} follows per node \
         (preferential attachment), seed {}, setup limit {} s, settle limit {} s, delivery wait {} s after the last post\n",
        st.posts_per_node,
        st.spread.as_secs_f64(),
        st.min_follows,
        st.max_follows,
        st.seed,
        st.setup_timeout.as_secs(),
        st.settle_timeout.as_secs(),
        st.delivery_timeout.as_secs()
    );
    graph_table(&mut s, &r.runs);
    main_table(&mut s, &r.runs);
    resources_table(&mut s, &r.runs);
    explain(&mut s);
    let _ = writeln!(
        s,
        "\n## Targets\n\n| target | measured | met |\n|---|---|---|"
    );
    for t in &r.targets {
        let met = if t.met { "yes" } else { "**no**" };
        let _ = writeln!(s, "| {} | {} | {met} |", t.what, t.measured);
    }
    notes(&mut s, &r.runs);
    s
}

fn graph_table(s: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        s,
        "## Follow graphs\n\n| N | edges | in-degree max | mean | median | authors without followers |\n|---:|---:|---:|---:|---:|---:|"
    );
    let mut seen = Vec::new();
    for r in runs {
        if seen.contains(&r.nodes) {
            continue;
        }
        seen.push(r.nodes);
        let g = &r.graph;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {} | {} |",
            g.nodes,
            g.edges,
            g.max_in_degree,
            g.mean_in_degree,
            g.median_in_degree,
            g.without_followers
        );
    }
}

fn main_table(s: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        s,
        "\n## Delivery and bytes\n\n| mode | N | setup | delivered / expected | delivery | reach | p50 | p99 | max | bytes in window | B / delivered event | B / node / post | background B/s | B / delivered event, net | B / node / post, net |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let setup = setup_text(r);
        let Some(f) = &r.figures else {
            let _ = writeln!(
                s,
                "| {} | {} | {setup} | not measured | | | | | | | | | | | |",
                r.mode, r.nodes
            );
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {setup} | {} / {} | {:.2}% | {:.1}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.mode,
            r.nodes,
            group(f.delivered as f64),
            group(f.expected as f64),
            f.delivery_ratio * 100.0,
            f.reach * 100.0,
            ms(f.p50_ms),
            ms(f.p99_ms),
            ms(f.max_ms),
            group(f.bytes as f64),
            f.bytes_per_delivery.map_or("—".into(), group),
            group(f.bytes_per_node_per_post),
            group(f.idle_bytes_per_sec),
            f.net_bytes_per_delivery.map_or("—".into(), group),
            group(f.net_bytes_per_node_per_post)
        );
    }
}

fn setup_text(r: &RunResult) -> String {
    match &r.setup {
        None => "failed".into(),
        Some(su) if r.mode == Mode::Follow => format!(
            "{}{:.1} s, {}/{} subs ({} before posting)",
            if su.complete { "" } else { "**incomplete** " },
            su.total_secs,
            su.subscriptions,
            su.expected_subscriptions,
            r.subscriptions_before_posting
        ),
        Some(su) => format!(
            "{}{:.1} s",
            if su.complete { "" } else { "**incomplete** " },
            su.total_secs
        ),
    }
}

fn resources_table(s: &mut String, runs: &[RunResult]) {
    let _ = writeln!(
        s,
        "\n## Setup and resources (whole process)\n\n| mode | N | start nodes | setup | settle | bytes before posting | peers per node (setup end / posting) | window | CPU s setup | CPU s window | RSS running | RSS after stop |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in runs {
        let su = r.setup.as_ref();
        let secs = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1} s"));
        let settle = r.settle.as_ref().map_or("—".into(), |q| {
            format!(
                "{}{:.1} s",
                if q.quiet { "" } else { "**not quiet** " },
                q.secs
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {settle} | {} | {} | {} | {:.1} | {:.1} | {:.0} MiB | {:.0} MiB |",
            r.mode,
            r.nodes,
            secs(su.map(|su| su.start_secs)),
            secs(su.map(|su| su.total_secs)),
            group(r.setup_bytes as f64),
            su.map_or("—".into(), |su| format!(
                "{:.1} / {:.1}",
                su.mean_peers, r.peers_before_posting
            )),
            secs(r.figures.as_ref().map(|f| f.window_secs)),
            r.cpu_setup_secs,
            r.cpu_window_secs,
            r.rss_running_mib,
            r.rss_after_mib
        );
    }
}

fn explain(s: &mut String) {
    let _ = writeln!(
        s,
        "\nReading the columns:\n\n\
         - **setup**: nodes started and, in follow mode, every follow list published and every \
         subscription live at the authors' nodes (summed subscriber counts = the graph's edges); \
         in broadcast mode, every node connected plus {MESH:.0} s of gossipsub heartbeats. Then \
         the nodes settle until a 5.5 s span (longer than AutoNAT v2's 5 s probe interval) in \
         which they send under 500 B/s per node plus 20 B/s per connection end (libp2p ping), \
         for at most the settle limit.\n\
         - **delivered / expected**: expected = each post × its author's followers in the graph; \
         delivered = those (post, follower) pairs stored at the follower within the window. \
         **reach**: arrivals at any other node / (posts × (N − 1)); in follow mode only followers \
         should get a post, in broadcast mode every node should.\n\
         - **p50 / p99 / max**: from just before the author's node accepted the post to the moment \
         the follower's node had stored it (its event bus announced it), over delivered pairs.\n\
         - **bytes in window**: what all nodes wrote to their memory connections (after noise and \
         yamux, as a real link would carry) from the first post until the last expected delivery \
         plus {GRACE:.0} s, or until the deadline. It includes background traffic (Kademlia, \
         ping, identify, AutoNAT, gossipsub heartbeats); **background B/s** is the rate of the \
         last settling span, and the **net** columns take background × window off.\n\
         - **B / delivered event** = bytes in window / delivered: the network's cost of one \
         follower receiving one post. Flat as N grows means the cost of a post scales with its \
         followers, not with the network.\n\
         - **B / node / post** = bytes in window / N / posts (posts = N × posts per node): what \
         each node sends, on average, for one post anywhere in the network. Broadcast mode keeps \
         it about constant (every node forwards every post), so its total grows as N²; follow \
         mode makes it fall as 1/N at a fixed follow count.",
        MESH = crate::scale::cluster::MESH_SETTLE.as_secs_f64(),
        GRACE = GRACE.as_secs_f64()
    );
}

fn notes(s: &mut String, runs: &[RunResult]) {
    let mut lines = Vec::new();
    for r in runs {
        let tag = format!("{} N = {}", r.mode, r.nodes);
        if let Some(e) = &r.error {
            lines.push(format!("{tag}: error: {e}"));
        }
        if let Some(su) = &r.setup {
            lines.extend(su.notes.iter().map(|n| format!("{tag}: {n}")));
        }
        if let Some(f) = r.figures.as_ref().filter(|f| f.delivered < f.expected) {
            lines.push(format!(
                "{tag}: {} expected deliveries missing ({} follower(s), {} author(s)){}",
                f.expected - f.delivered,
                f.followers_missing,
                f.authors_missing,
                if r.delivery_complete {
                    ""
                } else {
                    " at the delivery deadline"
                }
            ));
        }
        if !r.failed_posts.is_empty() {
            lines.push(format!(
                "{tag}: {} post(s) refused by their own node, first: {}",
                r.failed_posts.len(),
                r.failed_posts[0]
            ));
        }
        if r.lagged > 0 {
            lines.push(format!(
                "{tag}: collectors lagged and missed {} bus item(s)",
                r.lagged
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for l in lines {
            let _ = writeln!(s, "- {l}");
        }
    }
}

/// Writes `<out>.md` and `<out>.json`.
pub fn write(out: &Path, report: &Report, markdown: &str) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(out.with_extension("md"), markdown)?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.with_extension("json"), json + "\n")?;
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0} ms"))
}

/// 12345.6 → "12,346".
fn group(v: f64) -> String {
    if v.is_finite() {
        crate::machine::group(v.round() as u64)
    } else {
        "—".into()
    }
}

/// Workspace HEAD and whether `crates/` had uncommitted changes (another engineer may be
/// editing it while the benchmark builds).
fn source_state() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let head = shell(&["git", "-C", root, "rev-parse", "--short", "HEAD"]);
    let dirty = shell(&[
        "git",
        "-C",
        root,
        "status",
        "--porcelain",
        "--",
        "../crates",
    ]);
    let tree = match dirty.as_str() {
        "" => "crates/ clean",
        "?" => "crates/ state unknown",
        _ => "uncommitted changes in crates/",
    };
    format!("workspace HEAD {head}, {tree}")
}

/// A command's trimmed output, or "?".
fn shell(argv: &[&str]) -> String {
    crate::machine::command_output(argv[0], &argv[1..])
}

//! The results: one serialisable report, rendered as the markdown tables that
//! are both printed and written to `ingest-query.md` (JSON beside it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::machine::command_output;
pub use crate::machine::{group, Machine};
use crate::node::Mem;
use crate::runner::TargetResult;
use crate::verify::Ceiling;

#[derive(Debug, Serialize)]
pub struct Settings {
    pub ingest_events: usize,
    pub store_events: usize,
    pub authors: usize,
    pub queries: usize,
    pub conns: usize,
    pub window: usize,
    pub seed: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub ceiling: Option<Ceiling>,
    pub starling: Option<TargetResult>,
    pub nrr: Option<TargetResult>,
    pub nrr_note: String,
    /// Which starling binary was measured (path, build time, workspace commit).
    pub starling_note: String,
    /// Queries whose result counts differ between the two relays.
    pub query_count_mismatches: Option<usize>,
    pub notes: Vec<String>,
}

/// Current UTC time as text (from `date -u`), or the Unix time.
pub fn now_text() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unix {}", crate::gen::now_secs()))
}

/// Path, build time and workspace commit of the starling binary.
pub fn starling_note(bin: &Path) -> String {
    let built = command_output(
        "date",
        &[
            "-u".as_ref(),
            "-r".as_ref(),
            bin.as_os_str(),
            "+%Y-%m-%d %H:%M UTC".as_ref(),
        ],
    );
    let root = crate::cli::workspace_root();
    let git = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["-C".as_ref(), root.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        command_output("git", &all)
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "crates"]);
    let tree = if dirty.is_empty() {
        "clean"
    } else {
        "uncommitted changes in crates/"
    };
    format!(
        "{} (built {built}; workspace HEAD {head}, {tree})",
        bin.display()
    )
}

/// Write `ingest-query.md` and `ingest-query.json` into `dir`.
pub fn write(dir: &Path, report: &Report, markdown: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("ingest-query.md"), markdown)?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("ingest-query.json"), json + "\n")?;
    Ok(())
}

pub(crate) fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => {
            if digits == 0 {
                group(x.round() as u64)
            } else {
                format!("{x:.digits$}")
            }
        }
        _ => "—".into(),
    }
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

pub(crate) fn mem_text(m: Option<Mem>) -> String {
    match m {
        Some(m) => format!("{:.1} (HWM {:.1})", m.rss_mib(), m.hwm_mib()),
        None => "—".into(),
    }
}

/// Render the whole report as markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# starling ingest / query benchmark\n");
    let _ = writeln!(s, "- date: {}", r.date);
    let _ = writeln!(
        s,
        "- machine: {} ({} cores), {} MiB RAM; load average at start: {}",
        r.machine.cpu, r.machine.cores, r.machine.mem_total_mib, r.machine.loadavg_at_start
    );
    let st = &r.settings;
    let _ = writeln!(
        s,
        "- workload: ingest {} owner-signed kind-1 events (window {} per connection); store {} events by {} authors; {} REQs (seed {})",
        group(st.ingest_events as u64),
        st.window,
        group(st.store_events as u64),
        group(st.authors as u64),
        group(st.queries as u64),
        st.seed
    );
    let _ = writeln!(s, "- command: `{}`", r.command);
    let _ = writeln!(s, "- starling: {}", r.starling_note);
    let _ = writeln!(s, "- nostr-rs-relay: {}\n", r.nrr_note);
    crate::tables::summary(&mut s, r);
    crate::tables::ceiling(&mut s, r);
    crate::tables::ingest_cpu(&mut s, r);
    let title = "REQ → EOSE latency by query type";
    crate::tables::per_query(&mut s, r, title, |t| t.query.as_ref());
    let title = "REQ → EOSE latency by query type, client TCP_QUICKACK";
    crate::tables::per_query(&mut s, r, title, |t| t.query_quickack.as_ref());
    let _ = writeln!(
        s,
        "TCP_QUICKACK: the same mix again with the client acknowledging every segment at once. \
         A relay that leaves Nagle on (nostr-rs-relay does) otherwise waits for the client's \
         delayed ACK (~40 ms on Linux) before sending the rest of a multi-frame answer.\n"
    );
    crate::tables::notes(&mut s, r);
    s
}

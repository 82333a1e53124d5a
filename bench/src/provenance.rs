//! Shared by the `catchup` and `replica_load` benchmarks: where a result came from (the
//! command line, the date, the workspace commit and whether `crates/` had uncommitted
//! changes, the machine) and where it goes (a JSON file under the workspace root).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::machine::{command_output, Machine};

/// Provenance of one run, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub date: String,
    pub command: String,
    pub source: String,
    pub machine: Machine,
}

impl Provenance {
    /// Taken at the start of a run.
    pub fn now(command: &str) -> Self {
        Provenance {
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command: command.to_owned(),
            source: source_state(),
            machine: Machine::probe(),
        }
    }

    /// One line for the printed report.
    pub fn describe(&self) -> String {
        let m = &self.machine;
        format!(
            "{}, {}; {} ({} cores, {} MiB), load average at start {}",
            self.date, self.source, m.cpu, m.cores, m.mem_total_mib, m.loadavg_at_start
        )
    }
}

/// Root of the cargo workspace this crate lives in (`bench/..`).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `path` as given if absolute, else under the workspace root.
pub fn from_root(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace_root().join(path)
    }
}

/// The command that reproduces this run.
pub fn command_line(bin: &str) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cmd = format!("cargo run --release -p starling-bench --bin {bin}");
    if !args.is_empty() {
        cmd.push_str(" -- ");
        cmd.push_str(&args.join(" "));
    }
    cmd
}

/// Workspace HEAD and whether `crates/` had uncommitted changes (others may be editing it
/// while a benchmark builds).
fn source_state() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let head = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"]);
    let dirty = command_output(
        "git",
        &["-C", root, "status", "--porcelain", "--", "../crates"],
    );
    let tree = match dirty.as_str() {
        "" => "crates/ clean",
        "?" => "crates/ state unknown",
        _ => "uncommitted changes in crates/",
    };
    format!("workspace HEAD {head}, {tree}")
}

/// Writes `value` as pretty JSON to `path`, creating its directory.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(value)?;
    std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))
}

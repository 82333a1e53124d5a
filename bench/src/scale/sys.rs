//! What the process and the machine look like: resident memory and CPU time of this
//! process (from `/proc/self`); the machine description is shared (`machine.rs`).

/// Resident memory of this process, MiB (`VmRSS` in `/proc/self/status`).
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU seconds (user + system) this process has used so far. Assumes the usual
/// 100 clock ticks per second.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

pub use crate::machine::Machine;

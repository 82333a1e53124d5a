//! The catch-up benchmark's report: the run's provenance and settings, how the scenario
//! went (setup, live notes, offline notes and their replication), one row per method and
//! the targets (met / not met, never asserted); printed as text and written as
//! JSON.

use serde::Serialize;

use crate::catchup::cli::Settings;
use crate::catchup::measure::{Measured, TAIL};
use crate::catchup::posting::Posted;
use crate::catchup::probe::LookupCost;
use crate::machine::group;
use crate::netsim::Quiet;
use crate::provenance::Provenance;

/// In sync within this many seconds.
pub const TARGET_SECS: f64 = 5.0;
/// Bytes transferred at most this many times the missing events' JSON bytes.
pub const TARGET_RATIO: f64 = 1.3;

#[derive(Debug, Default, Serialize)]
pub struct SetupFigures {
    pub start_secs: f64,
    pub secs: f64,
    /// Nodes without a peer at the end of the connection wait.
    pub lonely: usize,
    /// R's live subscriptions before it went offline.
    pub subscribed: usize,
    /// Authors R kept as a home-set member (chosen to be none).
    pub r_home_for: usize,
}

/// Copies of each author's notes, whole, at nodes other than the author's own.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Replication {
    pub min: usize,
    pub mean: f64,
    pub max: usize,
    pub secs: f64,
}

impl Replication {
    pub fn new(copies: &[usize], secs: f64) -> Self {
        Replication {
            min: copies.iter().copied().min().unwrap_or(0),
            mean: copies.iter().sum::<usize>() as f64 / copies.len().max(1) as f64,
            max: copies.iter().copied().max().unwrap_or(0),
            secs,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub provenance: Provenance,
    pub settings: Settings,
    pub setup: SetupFigures,
    pub pre: Posted,
    pub pre_held_live: u64,
    pub offline: Posted,
    pub drain_secs: f64,
    pub pending_left: u64,
    pub replication: Replication,
    pub missing_events: u64,
    pub missing_json_bytes: u64,
    /// Bytes of R's store files copied for the naive method.
    pub store_copy_bytes: u64,
    /// The settling before each method.
    pub quiet: Vec<Quiet>,
    /// The background rate measured after each settling, bytes per second.
    pub background: Vec<f64>,
    pub methods: Vec<Measured>,
    /// What one fresh home-set lookup costs (measured after both methods).
    pub lookup: Option<LookupCost>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(settings: &Settings) -> Self {
        Report {
            provenance: Provenance::now(&settings.command),
            settings: settings.clone(),
            setup: SetupFigures::default(),
            pre: Posted::default(),
            pre_held_live: 0,
            offline: Posted::default(),
            drain_secs: 0.0,
            pending_left: 0,
            replication: Replication::default(),
            missing_events: 0,
            missing_json_bytes: 0,
            store_copy_bytes: 0,
            quiet: Vec::new(),
            background: Vec::new(),
            methods: Vec::new(),
            lookup: None,
            targets: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn ratio(&self, bytes: f64) -> f64 {
        bytes / self.missing_json_bytes.max(1) as f64
    }

    /// A method's result on stderr as soon as it is measured.
    pub fn print_method(&self, m: &Measured) {
        eprintln!(
            "   {}: {} after {}, {} B by all nodes ({:.2}x), {} B net of background ({:.2}x), own sent {} B",
            m.method,
            if m.in_sync { "in sync" } else { "NOT in sync" },
            m.secs.map_or("-".into(), |s| format!("{s:.2} s")),
            group(m.bytes_all),
            self.ratio(m.bytes_all as f64),
            group(m.bytes_net.max(0.0) as u64),
            self.ratio(m.bytes_net),
            group(m.bytes_own_sent)
        );
        for n in &m.notes {
            eprintln!("   note: {n}");
        }
    }

    /// Judges the targets on starling's method.
    pub fn judge(&mut self) {
        let Some(a) = self
            .methods
            .iter()
            .find(|m| m.method.starts_with("starling"))
        else {
            self.targets.push(Target {
                what: "starling catch-up measured".into(),
                measured: "no".into(),
                met: false,
            });
            return;
        };
        let secs = a.secs.filter(|_| a.in_sync);
        let ratio = self.ratio(a.bytes_all as f64);
        let net = self.ratio(a.bytes_net);
        let done = a.bytes_all_at_done.map(|b| self.ratio(b as f64));
        let targets = vec![
            Target {
                what: format!("in sync within {TARGET_SECS} s of the restart"),
                measured: secs.map_or(
                    format!("not in sync ({} of {})", a.held_at_end, a.expected),
                    |s| format!("{s:.2} s"),
                ),
                met: secs.is_some_and(|s| s <= TARGET_SECS),
            },
            Target {
                what: format!(
                    "bytes ≤ {TARGET_RATIO}x the missing events' JSON (all nodes' bytes)"
                ),
                measured: format!("{ratio:.2}x"),
                met: a.in_sync && ratio <= TARGET_RATIO,
            },
            Target {
                what: format!("bytes ≤ {TARGET_RATIO}x, net of the background rate"),
                measured: format!("{net:.2}x"),
                met: a.in_sync && net <= TARGET_RATIO,
            },
            Target {
                what: format!(
                    "bytes ≤ {TARGET_RATIO}x counted until the catch-up work ended (all nodes)"
                ),
                measured: done.map_or("work did not end".into(), |r| format!("{r:.2}x")),
                met: a.in_sync && done.is_some_and(|r| r <= TARGET_RATIO),
            },
        ];
        self.targets = targets;
    }

    /// The printed report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let st = &self.settings;
        s += &format!(
            "# Catch-up after downtime\n\n- {}\n- command: `{}`\n",
            self.provenance.describe(),
            st.command
        );
        s += &format!(
            "- network: {} nodes ({} extra, {} authors, R); R subscribed to {}/{} authors; R home-set member for {} author(s)\n",
            st.extra_nodes + st.authors + 1,
            st.extra_nodes,
            st.authors,
            self.setup.subscribed,
            st.authors,
            self.setup.r_home_for
        );
        s += &format!(
            "- before offline: {} notes posted, {} held by R live; offline: {} notes posted in {:.1} s ({} refused), outboxes drained {:.1} s later ({} rows pending); whole copies per author besides its own node: min {} / mean {:.2} / max {}\n",
            self.pre.events, self.pre_held_live, self.offline.events, self.offline.secs,
            self.offline.failed, self.drain_secs, self.pending_left,
            self.replication.min, self.replication.mean, self.replication.max
        );
        s += &format!(
            "- missing at return: {} events, {} B of JSON ({:.0} B per event)\n\n",
            group(self.missing_events),
            group(self.missing_json_bytes),
            self.missing_json_bytes as f64 / self.missing_events.max(1) as f64
        );
        s += "| method | in sync | seconds | bytes, all nodes | ratio | net of background | ratio | own sent | work done | bytes to done, all nodes | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for m in &self.methods {
            let done = m.bytes_all_at_done;
            s += &format!(
                "| {} | {} | {} | {} | {:.2}x | {} | {:.2}x | {} | {} | {} | {} |\n",
                m.method,
                if m.in_sync {
                    "yes".to_owned()
                } else {
                    format!("**no** ({}/{})", m.held_at_end, m.expected)
                },
                m.secs.map_or("—".into(), |v| format!("{v:.2}")),
                group(m.bytes_all),
                self.ratio(m.bytes_all as f64),
                group(m.bytes_net.max(0.0) as u64),
                self.ratio(m.bytes_net),
                group(m.bytes_own_sent),
                m.done_secs.map_or("—".into(), |v| format!("{v:.2} s")),
                done.map_or("—".into(), group),
                done.map_or("—".into(), |b| format!("{:.2}x", self.ratio(b as f64)))
            );
        }
        s += &self.details();
        s += "\n| target | measured | met |\n|---|---|---|\n";
        for t in &self.targets {
            s += &format!(
                "| {} | {} | {} |\n",
                t.what,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        for n in &self.notes {
            s += &format!("\n- note: {n}");
        }
        s
    }

    fn details(&self) -> String {
        let mut s = String::new();
        for m in &self.methods {
            s += &format!(
                "\n{}: the returning node wrote {} B, the other nodes {} B (what it received, plus whatever they sent each other meanwhile); background {} B/s (measured before it); {} B written by all nodes in the {:.0} s after the watch ended",
                m.method,
                group(m.bytes_own_sent),
                group(m.bytes_all - m.bytes_own_sent),
                group(m.background_bytes_per_sec.max(0.0) as u64),
                group(m.tail_bytes),
                TAIL.as_secs_f64()
            );
            if let Some(c) = &m.catch_up {
                s += &format!(
                    "; all subscribed after {}; status catch-up counters: {} missing, {} fetched, {} B negentropy",
                    m.all_subscribed_secs.map_or("—".into(), |v| format!("{v:.2} s")),
                    group(c.missing),
                    group(c.fetched),
                    group(c.reconcile_bytes)
                );
            }
            if let Some(n) = &m.naive {
                s += &format!(
                    "; {} authors done, {} failed, {} home-set lookups, {} fetch requests ({} B of filters), {} events received ({} B JSON), {} newly stored{}",
                    n.authors_done, n.authors_failed, n.home_set_lookups, n.requests,
                    group(n.filter_bytes), group(n.events_received),
                    group(n.event_bytes_received), group(n.events_stored),
                    n.first_error.as_ref().map_or(String::new(), |e| format!("; first error: {e}"))
                );
            }
            if let Some(r) = &m.ranks {
                s += &format!(
                    "; its PeerId ranks inside {} followed authors' home sets ({} within the hold slack); home-set member for {} author(s) at the end",
                    r.member,
                    r.hold,
                    m.home_for_at_end.map_or("?".into(), |n| n.to_string())
                );
            }
            for note in &m.notes {
                s += &format!("; {note}");
            }
        }
        if let Some(l) = &self.lookup {
            s += &format!(
                "\none fresh home-set lookup from an idle node: {} B written by all nodes on average (max {}), {:.1} ms, over {} lookups ({} failed)\n",
                group(l.mean_bytes as u64),
                group(l.max_bytes),
                l.mean_ms,
                l.lookups,
                l.failed
            );
        }
        s += "\n";
        s
    }
}

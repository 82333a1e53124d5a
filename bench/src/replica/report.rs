//! The replica-load report: provenance, how setup, posting and draining went, the
//! distribution over nodes of each per-node figure (mean, p50, p90, p99, max), the
//! network-wide totals per storage class, every author's copies, and the requests served
//! by kind; printed as text and written as JSON with every node's row.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::graph::GraphStats;
use crate::machine::group;
use crate::netsim::Quiet;
use crate::provenance::Provenance;
use crate::replica::census::{Class, Copies, NodeFigures};
use crate::replica::cli::Settings;
use crate::replica::placement::Placement;
use crate::replica::posting::Posted;

/// A distribution over nodes.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Dist {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    pub fn of(mut v: Vec<f64>) -> Dist {
        v.retain(|x| x.is_finite());
        v.sort_by(f64::total_cmp);
        let q = |q: f64| {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i]
        };
        Dist {
            mean: v.iter().sum::<f64>() / v.len().max(1) as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Setup {
    pub start_secs: f64,
    pub secs: f64,
    pub lonely: usize,
    pub edges: usize,
    pub subscribed: usize,
}

/// Copies per author, summarised.
#[derive(Debug, Default, Serialize)]
pub struct Replication {
    pub mean_at_members: f64,
    pub min_at_members: usize,
    pub authors_with_incomplete_members: usize,
    pub mean_at_followers: f64,
    pub mean_elsewhere: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub provenance: Provenance,
    pub settings: Settings,
    pub graph: Option<GraphStats>,
    pub setup: Setup,
    pub posted: Posted,
    pub drain_secs: f64,
    pub pending_left: u64,
    /// The quiet span reached (or not) after the fixed settling, before the census.
    pub quiet: Option<Quiet>,
    /// Bytes all nodes wrote from the first post to the census.
    pub sent_posting: u64,
    /// Inbound requests answered by the request service, network-wide, by kind, from
    /// the start (setup included) and during posting and settling.
    pub requests_total: BTreeMap<String, u64>,
    pub requests_posting: BTreeMap<String, u64>,
    /// Figure name → distribution over nodes.
    pub distributions: Vec<(String, Dist)>,
    /// Every node's events and bytes per class, summed.
    pub classes: BTreeMap<String, Class>,
    pub replication: Replication,
    /// Mean JSON bytes of the users' own events (their posts and follow list).
    pub bytes_per_own_event: f64,
    pub nodes: Vec<NodeFigures>,
    pub copies: Vec<Copies>,
    /// Home-set placement computed for a larger network, per share of reachable nodes.
    pub placement: Vec<Placement>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(settings: &Settings) -> Self {
        Report {
            provenance: Provenance::now(&settings.command),
            settings: settings.clone(),
            graph: None,
            setup: Setup::default(),
            posted: Posted::default(),
            drain_secs: 0.0,
            pending_left: 0,
            quiet: None,
            sent_posting: 0,
            requests_total: BTreeMap::new(),
            requests_posting: BTreeMap::new(),
            distributions: Vec::new(),
            classes: BTreeMap::new(),
            replication: Replication::default(),
            bytes_per_own_event: 0.0,
            nodes: Vec::new(),
            copies: Vec::new(),
            placement: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Computes the distributions, class totals and replication from the node rows.
    pub fn summarise(&mut self) {
        let n = &self.nodes;
        let col = |f: &dyn Fn(&NodeFigures) -> f64| n.iter().map(f).collect::<Vec<f64>>();
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                f64::NAN
            } else {
                a as f64 / b as f64
            }
        };
        self.distributions = vec![
            (
                "stored event bytes (JSON)".into(),
                Dist::of(col(&|f| f.event_bytes as f64)),
            ),
            (
                "event database file, bytes".into(),
                Dist::of(col(&|f| f.disk_bytes as f64)),
            ),
            (
                "own event bytes".into(),
                Dist::of(col(&|f| f.own.bytes as f64)),
            ),
            (
                "stored bytes / own bytes".into(),
                Dist::of(col(&|f| ratio(f.event_bytes, f.own.bytes))),
            ),
            (
                "authors held as member (status)".into(),
                Dist::of(col(&|f| f.home_for as f64)),
            ),
            (
                "authors held as member (computed)".into(),
                Dist::of(col(&|f| f.home_for_computed as f64)),
            ),
            (
                "other users' events held".into(),
                Dist::of(col(&|f| f.others().events as f64)),
            ),
            (
                "other users' bytes held".into(),
                Dist::of(col(&|f| f.others().bytes as f64)),
            ),
            (
                "bytes held as member / own bytes".into(),
                Dist::of(col(&|f| ratio(f.member.bytes, f.own.bytes))),
            ),
            (
                "followers (graph)".into(),
                Dist::of(col(&|f| f.followers as f64)),
            ),
            (
                "subscribers (peers subscribed here)".into(),
                Dist::of(col(&|f| f.subscribers as f64)),
            ),
            (
                "peer requests served (all kinds, from start)".into(),
                Dist::of(col(&|f| f.served.total() as f64)),
            ),
            (
                "pushes served".into(),
                Dist::of(col(&|f| f.served.push as f64)),
            ),
            (
                "reconciliation rounds served".into(),
                Dist::of(col(&|f| f.served.reconcile as f64)),
            ),
            (
                "subscriptions served (incl. renewals)".into(),
                Dist::of(col(&|f| f.served.subscribe as f64)),
            ),
            (
                "fetches served".into(),
                Dist::of(col(&|f| f.served.fetch as f64)),
            ),
            (
                "requests served per author held (status)".into(),
                Dist::of(col(&|f| ratio(f.served.total(), f.home_for as u64))),
            ),
            (
                "bytes sent during posting + settling".into(),
                Dist::of(col(&|f| f.sent_posting as f64)),
            ),
        ];
        let mut classes = BTreeMap::new();
        for f in n {
            for (name, c) in [
                ("own", f.own),
                ("member", f.member),
                ("followee", f.followee),
                ("inbox", f.inbox),
                ("member_inbox", f.member_inbox),
                ("slack", f.slack),
                ("other", f.other),
            ] {
                let e: &mut Class = classes.entry(name.to_owned()).or_default();
                e.events += c.events;
                e.bytes += c.bytes;
            }
        }
        let own = classes.get("own").copied().unwrap_or_default();
        self.bytes_per_own_event = own.bytes as f64 / own.events.max(1) as f64;
        self.classes = classes;
        let c = &self.copies;
        let mean = |f: &dyn Fn(&Copies) -> usize| {
            c.iter().map(f).sum::<usize>() as f64 / c.len().max(1) as f64
        };
        self.replication = Replication {
            mean_at_members: mean(&|c| c.at_members),
            min_at_members: c.iter().map(|c| c.at_members).min().unwrap_or(0),
            authors_with_incomplete_members: c.iter().filter(|c| c.members_incomplete > 0).count(),
            mean_at_followers: mean(&|c| c.at_followers),
            mean_elsewhere: mean(&|c| c.elsewhere),
        };
    }

    /// The printed report.
    pub fn text(&self) -> String {
        let st = &self.settings;
        let mut s = format!(
            "# Home-set load\n\n- {}\n- command: `{}`\n",
            self.provenance.describe(),
            st.command
        );
        if let Some(g) = &self.graph {
            s += &format!(
                "- {} nodes, {} follow edges (followers per user: max {}, mean {:.2}, median {}); setup {:.1} s, {}/{} subscriptions\n",
                g.nodes, g.edges, g.max_in_degree, g.mean_in_degree, g.median_in_degree,
                self.setup.secs, self.setup.subscribed, self.setup.edges
            );
        }
        s += &format!(
            "- posted {} notes and {} replies in {:.1} s ({} refused); outboxes drained {:.1} s later ({} rows pending), then {:.0} s of settling and {}; all nodes wrote {} B from the first post to the census\n",
            self.posted.notes, self.posted.replies, self.posted.secs, self.posted.refused,
            self.drain_secs, self.pending_left, st.settle.as_secs_f64(),
            self.quiet.map_or("no quiet check".into(), |q| format!(
                "{} after {:.1} s more ({:.1} KB/s)",
                if q.quiet { "quiet" } else { "NOT quiet" }, q.secs, q.bytes_per_sec / 1_000.0
            )),
            group(self.sent_posting)
        );
        s += &format!(
            "- own events: {:.0} B of JSON each on average; copies per author: {:.2} whole at its home-set members (min {}; {} author(s) with a member missing some), {:.2} at followers, {:.2} elsewhere\n\n",
            self.bytes_per_own_event,
            self.replication.mean_at_members,
            self.replication.min_at_members,
            self.replication.authors_with_incomplete_members,
            self.replication.mean_at_followers,
            self.replication.mean_elsewhere
        );
        s += "| per node | mean | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n";
        for (name, d) in &self.distributions {
            let v = |x: f64| {
                if x.abs() < 100.0 {
                    format!("{x:.2}")
                } else {
                    group(x.round() as u64)
                }
            };
            s += &format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                v(d.mean),
                v(d.p50),
                v(d.p90),
                v(d.p99),
                v(d.max)
            );
        }
        s += "\n| class (all nodes) | events | bytes |\n|---|---:|---:|\n";
        for (name, c) in &self.classes {
            s += &format!("| {name} | {} | {} |\n", group(c.events), group(c.bytes));
        }
        let kinds = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {}", group(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s += &format!(
            "\nrequests served, network-wide (from the request service's log events): from the start: {}; during posting and settling: {}\n",
            kinds(&self.requests_total),
            kinds(&self.requests_posting)
        );
        if !self.placement.is_empty() {
            s += "\n| placement (computed) | users | users served per node: mean | p50 | p90 | p99 | max | p99 / mean | in hold range: mean | p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
            for p in &self.placement {
                let d = &p.served;
                s += &format!(
                    "| {} nodes, {:.0}% of users reachable | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} |\n",
                    group(p.nodes as u64), p.share * 100.0, group(p.users as u64),
                    d.mean, d.p50, d.p90, d.p99, d.max, d.p99 / d.mean.max(f64::MIN_POSITIVE),
                    p.in_hold_range.mean, p.in_hold_range.p99
                );
            }
        }
        for n in &self.notes {
            s += &format!("\n- note: {n}");
        }
        s
    }
}

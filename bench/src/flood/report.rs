//! Figures of the flood benchmark: delay percentiles per phase and subscriber, the
//! flood's counts, and the loaded/unloaded ratios, as a table and as JSON.

use serde::Serialize;

use super::flooder::FloodCounts;
use super::honest::Delays;
use crate::provenance::Provenance;

/// Percentiles of one set of delays, in milliseconds.
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Summary {
    pub received: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(d: &Delays) -> Self {
        let mut v = d.ms.clone();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if v.is_empty() {
                f64::NAN
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize]
            }
        };
        Summary {
            received: v.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        }
    }
}

/// One configuration's run (limits on or off).
#[derive(Debug, Serialize)]
pub struct Run {
    pub limits: &'static str,
    pub posts_per_phase: usize,
    pub unloaded_on_a: Summary,
    pub unloaded_on_b: Summary,
    pub flooded_on_a: Summary,
    pub flooded_on_b: Summary,
    pub honest_refused_flooded: usize,
    pub flood: FloodCounts,
    pub flood_secs: f64,
    /// Flooded p50 over unloaded p50, on B (delivery over the network) and on A.
    pub ratio_p50_b: f64,
    pub ratio_p50_a: f64,
    pub ratio_p95_b: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub provenance: Provenance,
    pub runs: Vec<Run>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = format!("flood benchmark — {}\n", self.provenance.describe());
        for r in &self.runs {
            let f = &r.flood;
            s += &format!(
                "\nlimits {}: {} honest posts per phase; flood {:.0} junk EVENTs/s and {:.0} REQs/s for {:.1} s \
                 ({} rate-limited, {} refused otherwise, {} events sent back); honest posts refused under flood: {}\n",
                r.limits,
                r.posts_per_phase,
                f.events_sent as f64 / r.flood_secs,
                f.reqs_sent as f64 / r.flood_secs,
                r.flood_secs,
                f.rate_limited,
                f.refused_otherwise,
                f.events_received,
                r.honest_refused_flooded,
            );
            s += "  delay (ms)            received   p50      p95      max\n";
            for (name, x) in [
                ("unloaded, on A", r.unloaded_on_a),
                ("flooded,  on A", r.flooded_on_a),
                ("unloaded, on B", r.unloaded_on_b),
                ("flooded,  on B", r.flooded_on_b),
            ] {
                s += &format!(
                    "  {name:<20} {:>8} {:>8.1} {:>8.1} {:>8.1}\n",
                    x.received, x.p50_ms, x.p95_ms, x.max_ms
                );
            }
            s += &format!(
                "  flooded/unloaded p50: on B {:.2}x, on A {:.2}x; p95 on B {:.2}x (target: within 2x)\n",
                r.ratio_p50_b, r.ratio_p50_a, r.ratio_p95_b
            );
        }
        s
    }
}

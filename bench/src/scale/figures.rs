//! Figures of one configuration from the posting window's samples: follower deliveries
//! against the graph's expectations, publish→stored latency percentiles, the reach of
//! each post over all other nodes, and bytes per delivered event and per node per post.
//! Pure computation, unit-tested on hand-made samples.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use starling_proto::EventId;

use crate::scale::graph::Graph;
use crate::scale::posting::Samples;

/// The measured figures of one configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub posts: usize,
    /// Follower deliveries expected: each post × its author's followers.
    pub expected: usize,
    /// Expected deliveries that arrived within the window.
    pub delivered: usize,
    pub delivery_ratio: f64,
    /// Arrivals at nodes that do not follow the author (broadcast mode: everything else).
    pub non_follower_arrivals: usize,
    /// Arrivals at any other node / (posts × (N − 1)).
    pub reach: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Bytes all nodes sent during the window.
    pub bytes: u64,
    /// `bytes / delivered`.
    pub bytes_per_delivery: Option<f64>,
    /// `bytes / N / posts`.
    pub bytes_per_node_per_post: f64,
    /// Bytes all nodes sent per second while idle just before the window (background).
    pub idle_bytes_per_sec: f64,
    /// `bytes` less the background rate × the window (at least 0).
    pub net_bytes: u64,
    /// `net_bytes / delivered` and `net_bytes / N / posts`.
    pub net_bytes_per_delivery: Option<f64>,
    pub net_bytes_per_node_per_post: f64,
    pub window_secs: f64,
    /// Followers missing at least one expected post, and authors with a missing delivery.
    pub followers_missing: usize,
    pub authors_missing: usize,
}

/// Computes the figures; `bytes` is what all nodes sent during the window.
pub fn compute(graph: &Graph, samples: &Samples, bytes: u64, idle_bytes_per_sec: f64) -> Figures {
    let n = graph.len();
    let published: HashMap<EventId, (usize, std::time::Instant)> = samples
        .published
        .iter()
        .map(|p| (p.id, (p.author, p.at)))
        .collect();
    let posts = published.len();
    let expected: usize = samples
        .published
        .iter()
        .map(|p| graph.followers[p.author].len())
        .sum();
    let mut latencies = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut others = 0;
    for a in &samples.arrivals {
        let Some(&(author, at)) = published.get(&a.id) else {
            continue;
        };
        if a.node == author || !seen.insert((a.node, a.id)) {
            continue;
        }
        if graph.follows(a.node, author) {
            latencies.push(a.at.saturating_duration_since(at));
        } else {
            others += 1;
        }
    }
    latencies.sort_unstable();
    let delivered = latencies.len();
    let (followers_missing, authors_missing) = missing(graph, samples, &seen);
    let background = idle_bytes_per_sec * samples.window.as_secs_f64();
    let net_bytes = (bytes as f64 - background).max(0.0) as u64;
    Figures {
        posts,
        expected,
        delivered,
        delivery_ratio: ratio(delivered as f64, expected as f64),
        non_follower_arrivals: others,
        reach: ratio((delivered + others) as f64, (posts * (n - 1)) as f64),
        p50_ms: percentile(&latencies, 0.50).map(ms),
        p99_ms: percentile(&latencies, 0.99).map(ms),
        max_ms: latencies.last().copied().map(ms),
        bytes,
        bytes_per_delivery: (delivered > 0).then(|| bytes as f64 / delivered as f64),
        bytes_per_node_per_post: ratio(bytes as f64, (n * posts.max(1)) as f64),
        idle_bytes_per_sec,
        net_bytes,
        net_bytes_per_delivery: (delivered > 0).then(|| net_bytes as f64 / delivered as f64),
        net_bytes_per_node_per_post: ratio(net_bytes as f64, (n * posts.max(1)) as f64),
        window_secs: samples.window.as_secs_f64(),
        followers_missing,
        authors_missing,
    }
}

/// Distinct followers and authors among the expected deliveries that did not arrive.
fn missing(
    graph: &Graph,
    samples: &Samples,
    seen: &std::collections::HashSet<(usize, EventId)>,
) -> (usize, usize) {
    let mut followers = std::collections::HashSet::new();
    let mut authors = std::collections::HashSet::new();
    for p in &samples.published {
        for &f in &graph.followers[p.author] {
            if !seen.contains(&(f, p.id)) {
                followers.insert(f);
                authors.insert(p.author);
            }
        }
    }
    (followers.len(), authors.len())
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::posting::{Arrival, Published};
    use std::time::Instant;

    fn id(b: u8) -> EventId {
        EventId::from_byte_array([b; 32])
    }

    #[test]
    fn deliveries_reach_and_bytes() {
        // 0 follows 1; 2 follows 0 and 1.
        let g = Graph::from_follows(vec![vec![1], vec![], vec![0, 1]]);
        let t = Instant::now();
        let ms = Duration::from_millis;
        let samples = Samples {
            published: vec![
                Published {
                    author: 1,
                    id: id(1),
                    at: t,
                },
                Published {
                    author: 0,
                    id: id(2),
                    at: t,
                },
            ],
            arrivals: vec![
                Arrival {
                    node: 0,
                    author: 1,
                    id: id(1),
                    at: t + ms(10),
                },
                Arrival {
                    node: 2,
                    author: 1,
                    id: id(1),
                    at: t + ms(30),
                },
                Arrival {
                    node: 2,
                    author: 1,
                    id: id(1),
                    at: t + ms(40),
                }, // duplicate
                Arrival {
                    node: 1,
                    author: 0,
                    id: id(2),
                    at: t + ms(5),
                }, // not a follower
            ],
            window: Duration::from_secs(2),
            ..Samples::default()
        };
        let f = compute(&g, &samples, 3_000, 500.0);
        assert_eq!((f.posts, f.expected, f.delivered), (2, 3, 2));
        assert_eq!(f.non_follower_arrivals, 1);
        assert!((f.reach - 3.0 / 4.0).abs() < 1e-9);
        assert_eq!(f.p50_ms, Some(10.0));
        assert_eq!(f.p99_ms, Some(30.0));
        assert_eq!(f.bytes_per_delivery, Some(1_500.0));
        assert_eq!(f.bytes_per_node_per_post, 500.0);
        // 2 s of background at 500 B/s taken off.
        assert_eq!(f.net_bytes, 2_000);
        assert_eq!(f.net_bytes_per_delivery, Some(1_000.0));
        assert_eq!((f.followers_missing, f.authors_missing), (1, 1));
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}

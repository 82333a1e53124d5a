//! The follow graph of a configuration: a seeded preferential-attachment graph, so that
//! in-degrees (followers per author) follow a power law as on real networks. Node `i`
//! follows between `min` and `max` others, each picked with probability proportional to
//! (in-degree + 1). Used by `run` (who publishes which follow list, who expects which
//! post) and by `figures` (which arrivals count as deliveries).

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;

/// Who follows whom, by node index.
#[derive(Debug, Clone)]
pub struct Graph {
    /// `follows[i]`: the authors node `i` follows.
    pub follows: Vec<Vec<usize>>,
    /// `followers[a]`: the nodes following author `a`.
    pub followers: Vec<Vec<usize>>,
    edges: HashSet<(usize, usize)>,
}

/// Shape of a graph, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct GraphStats {
    pub nodes: usize,
    pub edges: usize,
    pub max_in_degree: usize,
    pub mean_in_degree: f64,
    pub median_in_degree: usize,
    /// Authors nobody follows (their posts are expected nowhere).
    pub without_followers: usize,
}

impl Graph {
    /// Draws the graph for `n` nodes; `min..=max` follows each (capped at `n - 1`).
    pub fn preferential(n: usize, min: usize, max: usize, rng: &mut StdRng) -> Graph {
        let mut in_degree = vec![0usize; n];
        let mut follows = Vec::with_capacity(n);
        for i in 0..n {
            let m = rng.gen_range(min..=max).min(n - 1);
            let mut picked: Vec<usize> = Vec::with_capacity(m);
            for _ in 0..m {
                let j = pick_weighted(&in_degree, i, &picked, rng);
                picked.push(j);
                in_degree[j] += 1;
            }
            picked.sort_unstable();
            follows.push(picked);
        }
        Self::from_follows(follows)
    }

    /// A graph from explicit follow lists (duplicates and self-follows ignored).
    pub fn from_follows(follows: Vec<Vec<usize>>) -> Graph {
        let n = follows.len();
        let mut followers = vec![Vec::new(); n];
        let mut edges = HashSet::new();
        for (i, list) in follows.iter().enumerate() {
            for &a in list {
                if a != i && a < n && edges.insert((i, a)) {
                    followers[a].push(i);
                }
            }
        }
        Graph {
            follows,
            followers,
            edges,
        }
    }

    pub fn len(&self) -> usize {
        self.follows.len()
    }

    /// Number of distinct (follower, author) pairs.
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Whether `follower` follows `author`.
    pub fn follows(&self, follower: usize, author: usize) -> bool {
        self.edges.contains(&(follower, author))
    }

    pub fn stats(&self) -> GraphStats {
        let mut degrees: Vec<usize> = self.followers.iter().map(Vec::len).collect();
        degrees.sort_unstable();
        let n = degrees.len().max(1);
        GraphStats {
            nodes: self.len(),
            edges: self.edge_count(),
            max_in_degree: degrees.last().copied().unwrap_or(0),
            mean_in_degree: self.edge_count() as f64 / n as f64,
            median_in_degree: degrees.get(degrees.len() / 2).copied().unwrap_or(0),
            without_followers: degrees.iter().filter(|&&d| d == 0).count(),
        }
    }
}

/// One author for node `me`, weighted by in-degree + 1, never `me` nor one already picked.
fn pick_weighted(in_degree: &[usize], me: usize, picked: &[usize], rng: &mut StdRng) -> usize {
    let eligible = |j: usize| j != me && !picked.contains(&j);
    let total: usize = (0..in_degree.len())
        .filter(|&j| eligible(j))
        .map(|j| in_degree[j] + 1)
        .sum();
    let mut r = rng.gen_range(0..total);
    for (j, d) in in_degree.iter().enumerate() {
        if !eligible(j) {
            continue;
        }
        if r < d + 1 {
            return j;
        }
        r -= d + 1;
    }
    unreachable!("r < total, so some eligible node takes it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn degrees_and_no_self_follows() {
        let mut rng = StdRng::seed_from_u64(7);
        let g = Graph::preferential(200, 3, 8, &mut rng);
        for (i, list) in g.follows.iter().enumerate() {
            assert!((3..=8).contains(&list.len()));
            assert!(!list.contains(&i));
            let distinct: HashSet<_> = list.iter().collect();
            assert_eq!(distinct.len(), list.len());
        }
        let out: usize = g.follows.iter().map(Vec::len).sum();
        assert_eq!(out, g.edge_count());
        let s = g.stats();
        // Preferential attachment: the most followed author has far more than the mean.
        assert!(s.max_in_degree as f64 > 3.0 * s.mean_in_degree, "{s:?}");
    }

    #[test]
    fn seeded() {
        let a = Graph::preferential(50, 3, 8, &mut StdRng::seed_from_u64(1));
        let b = Graph::preferential(50, 3, 8, &mut StdRng::seed_from_u64(1));
        assert_eq!(a.follows, b.follows);
    }

    #[test]
    fn small_networks_cap_the_follows() {
        let g = Graph::preferential(3, 3, 8, &mut StdRng::seed_from_u64(2));
        assert!(g.follows.iter().all(|l| l.len() == 2));
        assert!(g.follows(0, 1) && g.follows(1, 0));
    }
}

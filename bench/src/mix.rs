//! The seeded REQ mix: which filters are asked, in which order, built from
//! the store corpus so every query has something real to find.

use anyhow::{bail, Result};
use rand::distributions::WeightedIndex;
use rand::prelude::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::cache::Meta;

/// Query types, in report order, with their share of the mix.
pub const TYPES: &[(QueryType, u32)] = &[
    (QueryType::Author, 20),
    (QueryType::Authors20, 15),
    (QueryType::GlobalKind1, 10),
    (QueryType::TagE, 15),
    (QueryType::TagP, 15),
    (QueryType::Ids, 15),
    (QueryType::Profile, 10),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueryType {
    Author,
    Authors20,
    GlobalKind1,
    TagE,
    TagP,
    Ids,
    Profile,
}

impl QueryType {
    pub fn label(self) -> &'static str {
        match self {
            QueryType::Author => "author (limit 50)",
            QueryType::Authors20 => "20 authors (limit 100)",
            QueryType::GlobalKind1 => "kinds [1] recent (limit 100)",
            QueryType::TagE => "#e replies to an event",
            QueryType::TagP => "#p mentions (limit 50)",
            QueryType::Ids => "ids (10)",
            QueryType::Profile => "author + kind 0",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    pub kind: QueryType,
    pub filter: Value,
}

/// Pools of real values to draw query arguments from.
struct Pools<'a> {
    /// Authors of activity events (power-law by construction).
    active: Vec<&'a str>,
    /// Targets of `e` tags, once per referencing event.
    replied: Vec<&'a str>,
    /// Targets of `p` tags on notes, reactions and reposts.
    mentioned: Vec<&'a str>,
    ids: Vec<&'a str>,
    profiles: Vec<&'a str>,
}

fn pools(meta: &[Meta]) -> Pools<'_> {
    let mut p = Pools {
        active: vec![],
        replied: vec![],
        mentioned: vec![],
        ids: vec![],
        profiles: vec![],
    };
    for m in meta {
        p.ids.push(&m.id);
        match m.kind {
            0 => p.profiles.push(&m.pubkey),
            3 => {}
            _ => {
                p.active.push(&m.pubkey);
                p.replied.extend(m.e.iter().map(String::as_str));
                p.mentioned.extend(m.p.iter().map(String::as_str));
            }
        }
    }
    p
}

/// `count` queries drawn from the weighted mix with `seed`.
pub fn build(meta: &[Meta], count: usize, seed: u64) -> Result<Vec<Query>> {
    let p = pools(meta);
    if p.active.is_empty()
        || p.replied.is_empty()
        || p.mentioned.is_empty()
        || p.profiles.is_empty()
    {
        bail!("store corpus too small to build the query mix");
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9e_e5);
    let pick = WeightedIndex::new(TYPES.iter().map(|(_, w)| *w))?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = TYPES[pick.sample(&mut rng)].0;
        out.push(Query {
            kind,
            filter: filter(kind, &p, &mut rng),
        });
    }
    Ok(out)
}

fn one<'a>(pool: &[&'a str], rng: &mut StdRng) -> &'a str {
    pool[rng.gen_range(0..pool.len())]
}

fn filter(kind: QueryType, p: &Pools<'_>, rng: &mut StdRng) -> Value {
    match kind {
        QueryType::Author => json!({"authors": [one(&p.active, rng)], "limit": 50}),
        QueryType::Authors20 => {
            let mut authors: Vec<&str> = Vec::with_capacity(20);
            for _ in 0..200 {
                let a = one(&p.active, rng);
                if !authors.contains(&a) {
                    authors.push(a);
                }
                if authors.len() == 20 {
                    break;
                }
            }
            json!({"authors": authors, "limit": 100})
        }
        QueryType::GlobalKind1 => json!({"kinds": [1], "limit": 100}),
        QueryType::TagE => json!({"#e": [one(&p.replied, rng)]}),
        QueryType::TagP => json!({"#p": [one(&p.mentioned, rng)], "limit": 50}),
        QueryType::Ids => {
            let ids: Vec<&str> = p.ids.choose_multiple(rng, 10).copied().collect();
            json!({"ids": ids})
        }
        QueryType::Profile => json!({"authors": [one(&p.profiles, rng)], "kinds": [0]}),
    }
}

//! The store corpus REQ latency is measured against: events by a few
//! thousand authors whose activity follows a power law, kinds 1/7/6 plus one
//! kind 0 and one kind 3 per author, e/p tags pointing at earlier events and
//! authors, created over the past year.

use anyhow::Result;
use nostr::prelude::{EventId, Keys, Kind, Tag};
use rand::distributions::WeightedIndex;
use rand::prelude::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::gen::{self, author_keys, note_text, Planned};

/// Seconds in a year; the corpus spans this much time up to "now".
const YEAR: u64 = 365 * 86_400;
/// Recent notes remembered per author as reply/reaction targets.
const RECENT_PER_AUTHOR: usize = 20;

/// Mutable state while planning the corpus in time order.
struct Planner {
    rng: StdRng,
    keys: Vec<Keys>,
    popularity: WeightedIndex<f64>,
    recent: Vec<Vec<EventId>>,
    planned: Vec<Planned>,
}

/// Generate `count` signed events by `authors` authors; JSON, in time order.
pub fn generate(seed: u64, count: usize, authors: usize) -> Result<Vec<String>> {
    let authors = authors.clamp(1, count.max(1));
    let keys = author_keys(seed, authors)?;
    let weights: Vec<f64> = (0..authors).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    let mut planner = Planner {
        rng: StdRng::seed_from_u64(seed ^ 0xc0_4b05),
        popularity: WeightedIndex::new(&weights)?,
        keys,
        recent: vec![Vec::new(); authors],
        planned: Vec::with_capacity(count),
    };
    let meta_slots = profile_slots(&mut planner.rng, count, authors);
    let end = gen::now_secs();
    let start = end.saturating_sub(YEAR);
    let step = YEAR as f64 / count.max(1) as f64;
    for (i, slot) in meta_slots.into_iter().enumerate() {
        let jitter = planner.rng.gen_range(0.0..step);
        let at = start + (i as f64 * step + jitter) as u64;
        match slot {
            Some((author, true)) => planner.metadata(author, at),
            Some((author, false)) => planner.contacts(author, at),
            None => planner.activity(at),
        }
    }
    let Planner { planned, keys, .. } = planner;
    gen::sign_all(planned, &keys)
}

/// Positions of each author's kind 0 (`true`) and kind 3 (`false`) event.
fn profile_slots(rng: &mut StdRng, count: usize, authors: usize) -> Vec<Option<(usize, bool)>> {
    let wanted = (2 * authors).min(count / 10);
    let mut order: Vec<u32> = (0..count as u32).collect();
    order.shuffle(rng);
    let mut slots = vec![None; count];
    for (j, &slot) in order.iter().take(wanted).enumerate() {
        slots[slot as usize] = Some((j / 2, j % 2 == 0));
    }
    slots
}

impl Planner {
    fn push(
        &mut self,
        author: usize,
        at: u64,
        kind: Kind,
        tags: Vec<Tag>,
        content: String,
    ) -> EventId {
        let p = Planned::new(author, &self.keys[author], at, kind, tags, content);
        let id = p.id();
        self.planned.push(p);
        id
    }

    fn metadata(&mut self, author: usize, at: u64) {
        let about = note_text(&mut self.rng, 20, 120);
        let content = serde_json::json!({
            "name": format!("user{author}"),
            "about": about,
            "picture": format!("https://example.com/avatars/{author}.png"),
        })
        .to_string();
        self.push(author, at, Kind::Metadata, Vec::new(), content);
    }

    fn contacts(&mut self, author: usize, at: u64) {
        let follows = self.rng.gen_range(10..=200).min(self.keys.len());
        let mut picked: Vec<usize> = (0..follows)
            .map(|_| self.popularity.sample(&mut self.rng))
            .collect();
        picked.sort_unstable();
        picked.dedup();
        let tags = picked
            .iter()
            .map(|&a| Tag::public_key(self.keys[a].public_key()))
            .collect();
        self.push(author, at, Kind::ContactList, tags, String::new());
    }

    /// A note, reaction or repost by a power-law-chosen author.
    fn activity(&mut self, at: u64) {
        let author = self.popularity.sample(&mut self.rng);
        let roll: f64 = self.rng.gen();
        let target = self.target();
        match (roll, target) {
            (r, Some((id, to))) if r < 0.30 => {
                let tags = vec![Tag::event(id), Tag::public_key(self.keys[to].public_key())];
                let content = ["+", "🤙", "❤️", "🔥"][self.rng.gen_range(0..4)].to_string();
                self.push(author, at, Kind::Reaction, tags, content);
            }
            (r, Some((id, to))) if r < 0.40 => {
                let tags = vec![Tag::event(id), Tag::public_key(self.keys[to].public_key())];
                self.push(author, at, Kind::Repost, tags, String::new());
            }
            (r, target) => self.note(author, at, if r < 0.58 { target } else { None }),
        }
    }

    fn note(&mut self, author: usize, at: u64, reply_to: Option<(EventId, usize)>) {
        let mut tags = Vec::new();
        if let Some((id, to)) = reply_to {
            tags.push(Tag::event(id));
            tags.push(Tag::public_key(self.keys[to].public_key()));
        }
        if self.rng.gen_bool(0.1) {
            let mentioned = self.popularity.sample(&mut self.rng);
            tags.push(Tag::public_key(self.keys[mentioned].public_key()));
        }
        let text = note_text(&mut self.rng, 100, 300);
        let id = self.push(author, at, Kind::TextNote, tags, text);
        let recent = &mut self.recent[author];
        if recent.len() >= RECENT_PER_AUTHOR {
            recent.remove(0);
        }
        recent.push(id);
    }

    /// A recent note by a power-law-chosen author, if that author has one.
    fn target(&mut self) -> Option<(EventId, usize)> {
        for _ in 0..4 {
            let to = self.popularity.sample(&mut self.rng);
            let recent = &self.recent[to];
            if !recent.is_empty() {
                return Some((recent[self.rng.gen_range(0..recent.len())], to));
            }
        }
        None
    }
}

//! Deterministic keys, realistic note text, parallel signing, and the
//! owner-signed ingest event set.
//!
//! Everything is derived from the `--seed`, except the BIP340 auxiliary
//! randomness of signatures (which does not change event ids).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use nostr::prelude::{EventId, Keys, Kind, SecretKey, SignEvent, Tag, Timestamp, UnsignedEvent};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Label mixed into the seed for the node owner's key.
const OWNER_LABEL: u64 = 0x6f77_6e65_7200_0000;
/// Label mixed into the seed for store authors' keys.
const AUTHOR_LABEL: u64 = 0x6175_7468_6f72_0000;

/// Words notes are made of (lengths vary so notes look like prose).
const WORDS: &[&str] = &[
    "the",
    "a",
    "nostr",
    "relay",
    "just",
    "shipped",
    "new",
    "feature",
    "gm",
    "coffee",
    "bitcoin",
    "lightning",
    "zap",
    "thanks",
    "everyone",
    "building",
    "open",
    "source",
    "protocol",
    "decentralized",
    "today",
    "tomorrow",
    "really",
    "interesting",
    "thread",
    "about",
    "keys",
    "signatures",
    "peer",
    "network",
    "music",
    "photo",
    "weekend",
    "and",
    "of",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "this",
    "what",
    "do",
    "you",
    "think",
    "privacy",
    "censorship",
    "resistance",
    "client",
    "server",
    "sqlite",
    "rust",
    "fast",
];

/// Deterministic keypair number `index` of the family `label`.
pub fn derive_keys(seed: u64, label: u64, index: u64) -> Result<Keys> {
    let mut rng = StdRng::seed_from_u64(seed ^ label ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for _ in 0..16 {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        if let Ok(sk) = SecretKey::from_slice(&bytes) {
            return Ok(Keys::new(sk));
        }
    }
    Err(anyhow!("could not derive a secret key for index {index}"))
}

/// The node owner's keys for this seed.
pub fn owner_keys(seed: u64) -> Result<Keys> {
    derive_keys(seed, OWNER_LABEL, 0)
}

/// `count` store-author keys for this seed, derived in parallel.
pub fn author_keys(seed: u64, count: usize) -> Result<Vec<Keys>> {
    let threads = cores();
    let chunk = count.div_ceil(threads).max(1);
    let indices: Vec<usize> = (0..count).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|&i| derive_keys(seed, AUTHOR_LABEL, i as u64))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(count);
        for h in handles {
            out.extend(h.join().map_err(|_| anyhow!("key thread panicked"))??);
        }
        Ok(out)
    })
}

/// Number of CPU cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Note text between `min` and `max` bytes long.
pub fn note_text(rng: &mut StdRng, min: usize, max: usize) -> String {
    let target = rng.gen_range(min..=max);
    let mut s = String::with_capacity(target + 16);
    while s.len() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s.truncate(target);
    s
}

/// An unsigned event with its id computed, waiting to be signed by
/// `signer` (an index into the key table handed to [`sign_all`]).
pub struct Planned {
    pub signer: usize,
    pub event: UnsignedEvent,
}

impl Planned {
    /// Build and compute the id now, so later events can reference it.
    pub fn new(
        signer: usize,
        keys: &Keys,
        at: u64,
        kind: Kind,
        tags: Vec<Tag>,
        content: String,
    ) -> Self {
        let mut event =
            UnsignedEvent::new(keys.public_key(), Timestamp::from(at), kind, tags, content);
        event.ensure_id();
        Self { signer, event }
    }

    pub fn id(&self) -> EventId {
        self.event.id.unwrap_or_else(|| self.event.compute_id())
    }
}

/// Sign every planned event on all cores; returns NIP-01 JSON, one per event,
/// in the planned order.
pub fn sign_all(planned: Vec<Planned>, keys: &[Keys]) -> Result<Vec<String>> {
    let started = Instant::now();
    let total = planned.len();
    let chunk = total.div_ceil(cores()).max(1);
    let mut parts: Vec<Vec<Planned>> = Vec::new();
    let mut iter = planned.into_iter().peekable();
    while iter.peek().is_some() {
        parts.push(iter.by_ref().take(chunk).collect());
    }
    let out = std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| s.spawn(move || sign_part(part, keys)))
            .collect();
        let mut out = Vec::with_capacity(total);
        for h in handles {
            out.extend(h.join().map_err(|_| anyhow!("signing thread panicked"))??);
        }
        Ok::<_, anyhow::Error>(out)
    })?;
    eprintln!(
        "  signed {total} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

fn sign_part(part: Vec<Planned>, keys: &[Keys]) -> Result<Vec<String>> {
    part.into_iter()
        .map(|p| {
            let k = keys.get(p.signer).context("signer index out of range")?;
            Ok(k.sign_event(p.event)?.as_json())
        })
        .collect()
}

/// `count` owner-signed kind-1 notes, 100–300 bytes of text, created over the
/// last day; about one in five replies to an earlier note (e + p tags) and
/// one in ten mentions a few other people (p tags).
pub fn ingest_events(seed: u64, count: usize) -> Result<Vec<String>> {
    let owner = owner_keys(seed)?;
    let others: Vec<Keys> = (0..32)
        .map(|i| derive_keys(seed, AUTHOR_LABEL, i))
        .collect::<Result<_>>()?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1e57);
    let end = now_secs();
    let start = end.saturating_sub(86_400);
    let step = 86_400 / count.max(1) as u64;
    let mut planned: Vec<Planned> = Vec::with_capacity(count);
    for i in 0..count {
        let at = start + i as u64 * step;
        let mut tags = Vec::new();
        if i > 0 && rng.gen_bool(0.2) {
            let target = planned[rng.gen_range(0..i)].id();
            tags.push(Tag::event(target));
            tags.push(Tag::public_key(owner.public_key()));
        }
        if rng.gen_bool(0.1) {
            for _ in 0..rng.gen_range(1..=3) {
                tags.push(Tag::public_key(
                    others[rng.gen_range(0..others.len())].public_key(),
                ));
            }
        }
        let text = note_text(&mut rng, 100, 300);
        planned.push(Planned::new(0, &owner, at, Kind::TextNote, tags, text));
    }
    sign_all(planned, std::slice::from_ref(&owner))
}

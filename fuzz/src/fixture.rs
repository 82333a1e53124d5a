//! What the targets share: the fixed clock and limits they validate against, a fixed key
//! that re-signs fuzzed events (so that the code behind the signature check is reached),
//! and a small deterministic negentropy set.

use negentropy::NegentropyStorageVector;
use secp256k1::{Secp256k1, SignOnly};
use starling_proto::{Event, EventId, Keys, Kind, Limits, SecretKey, Tags, Timestamp};
use starling_store::{negentropy_storage, EventKey};

/// The clock every target validates against (2025-01-01), so runs are reproducible.
pub const NOW: u64 = 1_735_689_600;

/// The clock as a timestamp.
pub fn now() -> Timestamp {
    Timestamp::from(NOW)
}

/// The node's default limits.
pub fn limits() -> Limits {
    Limits::default()
}

/// The fixed signing key of the fuzz targets and their seeds.
pub struct Signer {
    keys: Keys,
    secp: Secp256k1<SignOnly>,
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}

impl Signer {
    pub fn new() -> Self {
        let secret = SecretKey::from_slice(&[0x5a; 32]).expect("a valid secret key");
        Self {
            keys: Keys::new(secret),
            secp: Secp256k1::signing_only(),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// `event`'s kind, time, tags and content, signed by this key.
    pub fn sign(&self, event: &Event) -> Event {
        self.sign_parts(
            event.created_at,
            event.kind,
            event.tags.clone(),
            event.content.clone(),
        )
    }

    /// An event of these parts signed by this key (deterministically: no auxiliary
    /// randomness), with a correct id.
    pub fn sign_parts(
        &self,
        created_at: Timestamp,
        kind: Kind,
        tags: Tags,
        content: String,
    ) -> Event {
        let pubkey = self.keys.public_key();
        let id = EventId::compute(&pubkey, &created_at, &kind, &tags, &content);
        let sig = self
            .keys
            .sign_schnorr_with_aux_rand(&self.secp, id.as_bytes(), &[0; 32]);
        Event::new(id, pubkey, created_at, kind, tags, content, sig)
    }
}

/// The `(created_at, id)` keys of a set of `n` events, as the store hands them to
/// negentropy (sorted, distinct).
pub fn event_keys(n: usize) -> Vec<EventKey> {
    let mut keys: Vec<EventKey> = (0..n as u32)
        .map(|i| {
            let mut id = [0u8; 32];
            for (j, b) in id.iter_mut().enumerate() {
                *b = (i.wrapping_mul(2_654_435_761) >> (j % 4 * 8)) as u8 ^ j as u8;
            }
            EventKey {
                created_at: 1_000 + u64::from(i % 7),
                id,
            }
        })
        .collect();
    keys.sort_by(|a, b| (a.created_at, a.id).cmp(&(b.created_at, b.id)));
    keys.dedup_by(|a, b| a.id == b.id);
    keys
}

/// A sealed negentropy set of `n` events.
pub fn storage(n: usize) -> NegentropyStorageVector {
    negentropy_storage(&event_keys(n)).expect("distinct keys seal")
}

/// The one [`Signer`] of a fuzzing process (built once: a signing context is costly).
pub fn signer() -> &'static Signer {
    static SIGNER: std::sync::OnceLock<Signer> = std::sync::OnceLock::new();
    SIGNER.get_or_init(Signer::new)
}

//! NIP-01 event validation: size and shape limits, the `created_at` window, NIP-40
//! expiration, the id (the hash of the canonical serialization) and the BIP340 signature.
//! Cheap checks run first so that junk costs little; the signature is checked last.
//!
//! A valid event comes back as a [`RenderedEvent`]: checking the id renders the event's
//! canonical JSON almost for free (see [`crate::render`]), so callers never serialize it
//! again.
//!
//! A [`KnownKey`] is a public key whose curve point was parsed once: the node's owner
//! signs most of what its clients send, and parsing the key (a square root) is a tenth of
//! a signature check.

use nostr::prelude::{Event, EventId, PublicKey, Timestamp};
use secp256k1::schnorr::Signature;
use secp256k1::{Secp256k1, VerifyOnly, XOnlyPublicKey};

use crate::limits::Limits;
use crate::render::RenderedEvent;

/// Why an event was refused. Every variant is an `invalid:` reason in NIP-01 terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("event is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("event has {count} tags, the limit is {limit}")]
    TooManyTags { count: usize, limit: usize },
    #[error("tag {index} has {count} elements, the limit is {limit}")]
    TagTooLong {
        index: usize,
        count: usize,
        limit: usize,
    },
    #[error("created_at {created_at} is more than {limit_secs} s in the future")]
    FromTheFuture { created_at: u64, limit_secs: u64 },
    #[error("created_at {created_at} is more than {limit_secs} s in the past")]
    TooOld { created_at: u64, limit_secs: u64 },
    #[error("event has expired (NIP-40)")]
    Expired,
    #[error("event id does not match the hash of the event")]
    BadId,
    #[error("bad signature")]
    BadSignature,
}

/// Parses `json` as an event and validates it. `now` is the clock to check `created_at`
/// and expiration against.
pub fn validate_event(
    json: &str,
    limits: &Limits,
    now: Timestamp,
) -> Result<Event, ValidationError> {
    validate_rendered(json, limits, now).map(|valid| valid.into_parts().0)
}

/// A public key with its curve point parsed, for checking the signatures of its events.
#[derive(Debug, Clone)]
pub struct KnownKey {
    key: PublicKey,
    point: XOnlyPublicKey,
    secp: Secp256k1<VerifyOnly>,
}

impl KnownKey {
    /// None when `key` is not a point on the curve (nothing it signs could be valid).
    pub fn new(key: PublicKey) -> Option<Self> {
        key.xonly().ok().map(|point| Self {
            key,
            point,
            secp: Secp256k1::verification_only(),
        })
    }

    pub fn key(&self) -> PublicKey {
        self.key
    }
}

/// As [`validate_event`], also returning the event's canonical JSON.
pub fn validate_rendered(
    json: &str,
    limits: &Limits,
    now: Timestamp,
) -> Result<RenderedEvent, ValidationError> {
    validate_rendered_known(json, limits, now, None)
}

/// As [`validate_rendered`]; an event signed by `known` skips parsing its key.
pub fn validate_rendered_known(
    json: &str,
    limits: &Limits,
    now: Timestamp,
    known: Option<&KnownKey>,
) -> Result<RenderedEvent, ValidationError> {
    check_size(json.len(), limits)?;
    let event = Event::from_json(json).map_err(|e| ValidationError::Malformed(e.to_string()))?;
    check_shape_and_time(&event, limits, now)?;
    check_signed(RenderedEvent::render(event), known)
}

/// Validates an already parsed event; the size limit applies to its canonical JSON.
pub fn validate_parsed(
    event: Event,
    limits: &Limits,
    now: Timestamp,
) -> Result<RenderedEvent, ValidationError> {
    validate_parsed_known(event, limits, now, None)
}

/// As [`validate_parsed`]; an event signed by `known` skips parsing its key.
pub fn validate_parsed_known(
    event: Event,
    limits: &Limits,
    now: Timestamp,
    known: Option<&KnownKey>,
) -> Result<RenderedEvent, ValidationError> {
    let rendered = RenderedEvent::render(event);
    check_size(rendered.0.json().len(), limits)?;
    check_shape_and_time(rendered.0.event(), limits, now)?;
    check_signed(rendered, known)
}

/// The cheap checks: tags, the `created_at` window and expiration.
fn check_shape_and_time(
    event: &Event,
    limits: &Limits,
    now: Timestamp,
) -> Result<(), ValidationError> {
    check_tags(event, limits)?;
    check_time(event, limits, now)?;
    if event.is_expired_at(now) {
        return Err(ValidationError::Expired);
    }
    Ok(())
}

/// The id (`hashed_id` is what the event's content hashes to) and the signature.
fn check_signed(
    (rendered, hashed_id): (RenderedEvent, EventId),
    known: Option<&KnownKey>,
) -> Result<RenderedEvent, ValidationError> {
    let event = rendered.event();
    if hashed_id != event.id {
        return Err(ValidationError::BadId);
    }
    let valid = match known {
        Some(k) if k.key == event.pubkey => k
            .secp
            .verify_schnorr(
                &Signature::from_byte_array(*event.sig.as_bytes()),
                event.id.as_bytes(),
                &k.point,
            )
            .is_ok(),
        _ => event.verify_signature(),
    };
    if !valid {
        return Err(ValidationError::BadSignature);
    }
    Ok(rendered)
}

fn check_size(size: usize, limits: &Limits) -> Result<(), ValidationError> {
    if size > limits.max_event_bytes {
        return Err(ValidationError::TooLarge {
            size,
            limit: limits.max_event_bytes,
        });
    }
    Ok(())
}

fn check_tags(event: &Event, limits: &Limits) -> Result<(), ValidationError> {
    let count = event.tags.len();
    if count > limits.max_tags {
        return Err(ValidationError::TooManyTags {
            count,
            limit: limits.max_tags,
        });
    }
    for (index, tag) in event.tags.iter().enumerate() {
        let elements = tag.as_slice().len();
        if elements > limits.max_tag_elements {
            return Err(ValidationError::TagTooLong {
                index,
                count: elements,
                limit: limits.max_tag_elements,
            });
        }
    }
    Ok(())
}

fn check_time(event: &Event, limits: &Limits, now: Timestamp) -> Result<(), ValidationError> {
    let created_at = event.created_at.as_secs();
    let now = now.as_secs();
    if created_at > now.saturating_add(limits.max_future_secs) {
        return Err(ValidationError::FromTheFuture {
            created_at,
            limit_secs: limits.max_future_secs,
        });
    }
    if let Some(limit_secs) = limits.max_past_secs {
        if created_at < now.saturating_sub(limit_secs) {
            return Err(ValidationError::TooOld {
                created_at,
                limit_secs,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;

    fn signed(keys: &Keys, builder: EventBuilder) -> Event {
        builder.finalize(keys).expect("sign")
    }

    #[test]
    fn accepts_a_signed_event() {
        let keys = Keys::generate();
        let event = signed(&keys, EventBuilder::new(Kind::TextNote, "hello"));
        let got = validate_event(&event.as_json(), &Limits::default(), Timestamp::now()).unwrap();
        assert_eq!(got, event);
    }

    #[test]
    fn renders_the_canonical_json_whatever_the_client_sent() {
        let keys = Keys::generate();
        let event = signed(&keys, EventBuilder::new(Kind::TextNote, "a/b \"c\" é"));
        let sent = format!(
            r#"{{ "sig": "{}", "content": "a\/b \"c\" \u00e9", "kind": 1,
                 "extra": [1, 2], "tags": [ ], "created_at": {}, "pubkey": "{}",
                 "id": "{}" }}"#,
            event.sig,
            event.created_at.as_secs(),
            event.pubkey.to_hex(),
            event.id.to_hex()
        );
        let got = validate_rendered(&sent, &Limits::default(), Timestamp::now()).unwrap();
        assert_eq!(got.event(), &event);
        assert_eq!(got.json(), event.as_json());
        let parsed = validate_parsed(event.clone(), &Limits::default(), Timestamp::now()).unwrap();
        assert_eq!(parsed.json(), event.as_json());
    }

    #[test]
    fn refuses_a_changed_content() {
        let keys = Keys::generate();
        let event = signed(&keys, EventBuilder::new(Kind::TextNote, "hello"));
        let json = event.as_json().replace("hello", "hellp");
        let err = validate_event(&json, &Limits::default(), Timestamp::now()).unwrap_err();
        assert_eq!(err, ValidationError::BadId);
    }

    #[test]
    fn refuses_a_foreign_signature() {
        let keys = Keys::generate();
        let a = signed(&keys, EventBuilder::new(Kind::TextNote, "a"));
        let b = signed(&keys, EventBuilder::new(Kind::TextNote, "b"));
        let json = a.as_json().replace(&a.sig.to_string(), &b.sig.to_string());
        let err = validate_event(&json, &Limits::default(), Timestamp::now()).unwrap_err();
        assert_eq!(err, ValidationError::BadSignature);
    }

    #[test]
    fn a_known_key_checks_signatures_the_same_way() {
        let owner = Keys::generate();
        let other = Keys::generate();
        let known = KnownKey::new(owner.public_key()).unwrap();
        let (limits, now) = (Limits::default(), Timestamp::now());
        let check = |json: &str| validate_rendered_known(json, &limits, now, Some(&known));
        let a = signed(&owner, EventBuilder::new(Kind::TextNote, "a"));
        let b = signed(&owner, EventBuilder::new(Kind::TextNote, "b"));
        assert_eq!(check(&a.as_json()).unwrap().event(), &a);
        let swapped = a.as_json().replace(&a.sig.to_string(), &b.sig.to_string());
        assert_eq!(check(&swapped).unwrap_err(), ValidationError::BadSignature);
        // Someone else's events are checked with their own key.
        let c = signed(&other, EventBuilder::new(Kind::TextNote, "c"));
        assert_eq!(check(&c.as_json()).unwrap().event(), &c);
        let forged = c.as_json().replace(&c.sig.to_string(), &a.sig.to_string());
        assert_eq!(check(&forged).unwrap_err(), ValidationError::BadSignature);
        let parsed = validate_parsed_known(a.clone(), &limits, now, Some(&known)).unwrap();
        assert_eq!(parsed.event(), &a);
    }

    #[test]
    fn refuses_oversized_and_overtagged_events() {
        let keys = Keys::generate();
        let limits = Limits {
            max_event_bytes: 300,
            ..Limits::default()
        };
        let big = signed(&keys, EventBuilder::new(Kind::TextNote, "x".repeat(400)));
        let err = validate_event(&big.as_json(), &limits, Timestamp::now()).unwrap_err();
        assert!(matches!(err, ValidationError::TooLarge { limit: 300, .. }));

        let tags = (0..3).map(|i| Tag::hashtag(format!("t{i}")));
        let tagged = signed(&keys, EventBuilder::new(Kind::TextNote, "t").tags(tags));
        let limits = Limits {
            max_tags: 2,
            ..Limits::default()
        };
        let err = validate_event(&tagged.as_json(), &limits, Timestamp::now()).unwrap_err();
        assert_eq!(err, ValidationError::TooManyTags { count: 3, limit: 2 });
    }

    #[test]
    fn enforces_the_created_at_window() {
        let keys = Keys::generate();
        let now = Timestamp::now();
        let future = signed(
            &keys,
            EventBuilder::new(Kind::TextNote, "f").custom_created_at(now + 3600),
        );
        let err = validate_event(&future.as_json(), &Limits::default(), now).unwrap_err();
        assert!(matches!(err, ValidationError::FromTheFuture { .. }));

        let old = signed(
            &keys,
            EventBuilder::new(Kind::TextNote, "o").custom_created_at(now - 7200),
        );
        assert!(validate_event(&old.as_json(), &Limits::default(), now).is_ok());
        let strict = Limits {
            max_past_secs: Some(3600),
            ..Limits::default()
        };
        let err = validate_event(&old.as_json(), &strict, now).unwrap_err();
        assert!(matches!(err, ValidationError::TooOld { .. }));
    }

    #[test]
    fn refuses_expired_events_and_malformed_json() {
        let keys = Keys::generate();
        let now = Timestamp::now();
        let expired = signed(
            &keys,
            EventBuilder::new(Kind::TextNote, "e").tag(Tag::expiration(now - 10)),
        );
        let err = validate_event(&expired.as_json(), &Limits::default(), now).unwrap_err();
        assert_eq!(err, ValidationError::Expired);
        let err = validate_event("{\"id\":1}", &Limits::default(), now).unwrap_err();
        assert!(matches!(err, ValidationError::Malformed(_)));
    }
}

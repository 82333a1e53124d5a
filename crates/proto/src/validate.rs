//! NIP-01 event validation: size and shape limits, the `created_at` window, NIP-40
//! expiration, the id (the hash of the canonical serialization) and the BIP340 signature.
//! Cheap checks run first so that junk costs little; the signature is checked last.

use nostr::prelude::{Event, Timestamp};

use crate::limits::Limits;

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
    check_size(json.len(), limits)?;
    let event = Event::from_json(json).map_err(|e| ValidationError::Malformed(e.to_string()))?;
    validate_parsed(&event, json.len(), limits, now)?;
    Ok(event)
}

/// Validates an already parsed event whose JSON form is `json_len` bytes long.
pub fn validate_parsed(
    event: &Event,
    json_len: usize,
    limits: &Limits,
    now: Timestamp,
) -> Result<(), ValidationError> {
    check_size(json_len, limits)?;
    check_tags(event, limits)?;
    check_time(event, limits, now)?;
    if event.is_expired_at(now) {
        return Err(ValidationError::Expired);
    }
    if !event.verify_id() {
        return Err(ValidationError::BadId);
    }
    if !event.verify_signature() {
        return Err(ValidationError::BadSignature);
    }
    Ok(())
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

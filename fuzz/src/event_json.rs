//! `event_json`: bytes as a client's or peer's event JSON, through the one validation
//! path every event takes (`starling_proto::validate_rendered`: size and shape limits, the
//! `created_at` window, NIP-40 expiration, id, signature) and `raw_event_id` (the id an
//! `OK false` names).
//!
//! Checks: an event that validates renders exactly `serde_json::to_string(&event)` and
//! parses back to itself; and the same event content re-signed by the fixture key is
//! accepted (or refused only for a limit or expiration), so the fuzzer also reaches the
//! code behind the signature check, which random bytes never pass.

use starling_proto::{
    raw_event_id, validate_parsed, validate_rendered, Event, Limits, Timestamp, ValidationError,
};

use crate::fixture::{limits, now, signer};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = limits();
    let id = raw_event_id(text);
    assert!(id.is_empty() || id.len() == 64, "raw_event_id gave {id:?}");
    if let Ok(valid) = validate_rendered(text, &limits, now()) {
        check_rendered(valid.event(), valid.json());
    }
    if let Ok(event) = Event::from_json(text) {
        resigned_is_accepted(&event, &limits);
    }
}

/// The canonical JSON of a valid event is serde's and reads back to the same event.
pub fn check_rendered(event: &Event, json: &str) {
    let serde = serde_json::to_string(event).expect("an event serializes");
    assert_eq!(json, serde, "rendered JSON differs from serde_json's");
    let back = Event::from_json(json).expect("the canonical JSON parses");
    assert_eq!(
        &back, event,
        "the canonical JSON reads back to another event"
    );
}

/// `event`'s kind, time, tags and content, honestly signed, must pass validation at its
/// own `created_at`, unless it breaks a size limit or has expired.
fn resigned_is_accepted(event: &Event, limits: &Limits) {
    let signed = signer().sign(event);
    let at = signed.created_at;
    match validate_parsed(signed.clone(), limits, at) {
        Ok(valid) => {
            assert_eq!(valid.event(), &signed);
            check_rendered(&signed, valid.json());
            let again = validate_rendered(valid.json(), limits, at)
                .expect("the canonical JSON of a valid event validates");
            assert_eq!(again.event(), &signed);
            assert_eq!(again.json(), valid.json());
        }
        Err(e) => assert!(
            refusable(&e, &signed, at),
            "a correctly signed event was refused: {e}"
        ),
    }
}

/// The reasons a correctly signed event may still be refused at its own `created_at`.
fn refusable(e: &ValidationError, event: &Event, at: Timestamp) -> bool {
    match e {
        ValidationError::TooLarge { .. }
        | ValidationError::TooManyTags { .. }
        | ValidationError::TagTooLong { .. } => true,
        ValidationError::Expired => event.is_expired_at(at),
        _ => false,
    }
}

//! `client_message`: bytes as one WebSocket text frame from a client, through the relay's
//! two parsers: NIP-01 (`starling_proto::parse_client_message`: EVENT, REQ, COUNT, CLOSE,
//! AUTH; filters checked by `check_filter`) and NIP-77 (`parse_neg_message`: NEG-OPEN,
//! NEG-MSG, NEG-CLOSE, hex payloads). What they return is then used as the session would:
//! filters matched against an event, raw events validated, a NEG-OPEN's initial message
//! answered by a negentropy session.
//!
//! Checks: every accepted REQ or COUNT has 1 to `max_filters` filters within the value
//! bound and a subscription id within its length bound; the same for NEG-OPEN's filter.

use starling_api::decode::{parse_neg_message, NegRequest, NegSessions};
use starling_proto::message::check_filter;
use starling_proto::{
    matches_any, parse_client_message, validate_rendered, ClientMessage, Event, Filter, Limits,
    SubscriptionId,
};
use tokio::time::Instant;

use crate::fixture::{limits, now, storage};

/// An event the parsed filters are matched against.
const PROBE: &str = r#"{"id":"f0b3a2d40d9a0f4b8f7c6c4c8b1b1c0f2a9e6e3d1c5b7a9f8e2d4c6b8a0f1e3d","pubkey":"79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798","created_at":1735689000,"kind":1,"tags":[["e","aa"],["p","79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"],["t","nostr"]],"content":"hello","sig":"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}"#;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = limits();
    match parse_client_message(text, &limits) {
        Ok(ClientMessage::Req { sub_id, filters })
        | Ok(ClientMessage::Count { sub_id, filters }) => {
            check_sub_id(&sub_id, &limits);
            assert!(!filters.is_empty() && filters.len() <= limits.max_filters);
            check_filters(&filters, &limits);
        }
        Ok(ClientMessage::Close(sub_id)) => check_sub_id(&sub_id, &limits),
        Ok(ClientMessage::Event(raw)) | Ok(ClientMessage::Auth(raw)) => {
            let _ = validate_rendered(raw, &limits, now());
        }
        Err(_) => {}
    }
    match parse_neg_message(text, &limits) {
        Ok(NegRequest::Open {
            sub_id,
            filter,
            initial,
        }) => {
            check_sub_id(&sub_id, &limits);
            check_filters(std::slice::from_ref(&filter), &limits);
            let mut sessions = NegSessions::new(2, 1_000);
            let at = Instant::now();
            let _ = sessions.open(sub_id, storage(64), 64, &initial, at);
        }
        Ok(NegRequest::Msg { sub_id, .. }) | Ok(NegRequest::Close(sub_id)) => {
            check_sub_id(&sub_id, &limits)
        }
        Err(_) => {}
    }
}

fn check_sub_id(sub_id: &SubscriptionId, limits: &Limits) {
    let chars = sub_id.as_str().chars().count();
    assert!(
        chars >= 1 && chars <= limits.max_subid_chars,
        "{chars} chars"
    );
}

fn check_filters(filters: &[Filter], limits: &Limits) {
    for filter in filters {
        assert!(check_filter(filter, limits).is_ok());
    }
    let probe = Event::from_json(PROBE).expect("the probe event parses");
    let _ = matches_any(filters, &probe);
}

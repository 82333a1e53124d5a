//! `p2p_wire`: bytes as what another node sends: a request-response message (the codec's
//! own `decode_request` / `decode_response`, CBOR), then `Request::check` and the decoding
//! the service does on each request type (pushed events peeked and validated, public keys,
//! addresses and filters parsed, a `Reconcile` round answered); a response's members,
//! events and negentropy answer decoded as the asking side does; and the same bytes as a
//! home record offered to or found in the DHT (`HomeRecord::from_json`).
//!
//! Checks: a decoded message encodes and decodes back to itself; a request that passes
//! `check` is within the wire limits; a home record accepted after re-signing by the
//! fixture key names that key as its author and keeps the signed text.

use negentropy::{Id, Negentropy};
use starling_net::event_times;
use starling_net::home::HomeRecord;
use starling_net::libp2p::Multiaddr;
use starling_net::reconcile::FRAME_LIMIT;
use starling_net::service::{parse_keys, Peeked};
use starling_net::wire::{
    decode_request, decode_response, Inbound, RequestBody, ResponseBody, WireLimits,
};
use starling_proto::{validate_rendered, Event, Filter};

use crate::fixture::{limits, now, signer, storage};

pub fn run(data: &[u8]) {
    if let Inbound::Request(request) = decode_request(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).expect("a request encodes");
        assert_eq!(decode_request(&bytes), Inbound::Request(request.clone()));
        let wire = WireLimits::default();
        if request.check(&wire).is_ok() {
            serve(request.body, &wire);
        }
    }
    if let Ok(response) = decode_response(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &response).expect("a response encodes");
        assert_eq!(decode_response(&bytes).ok(), Some(response.clone()));
        read_answer(response.body);
    }
    if let Ok(json) = std::str::from_utf8(data) {
        home_record(json);
    }
}

/// What the service decodes of a request that passed `check`.
fn serve(body: RequestBody, wire: &WireLimits) {
    match body {
        RequestBody::Push { events } => {
            assert!(events.len() <= wire.events);
            for json in &events {
                let _ = Peeked::read(json);
                event(json);
            }
        }
        RequestBody::Subscribe { authors, addrs, .. } => {
            assert!(authors.len() <= wire.items && addrs.len() <= wire.items);
            let _ = parse_keys(&authors);
            let _: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        }
        RequestBody::Unsubscribe { authors } | RequestBody::Moved { authors } => {
            assert!(authors.len() <= wire.items);
            let _ = parse_keys(&authors);
        }
        RequestBody::Fetch { filters, .. } => {
            assert!(filters.len() <= wire.items);
            for f in &filters {
                let _ = Filter::from_json(f);
            }
        }
        RequestBody::Reconcile { filter, message } => {
            if Filter::from_json(&filter).is_ok() {
                let mut neg = Negentropy::owned(storage(32), FRAME_LIMIT).expect("a sealed set");
                let _ = neg.reconcile(&message);
            }
        }
    }
}

/// What the asking side decodes of an answer.
fn read_answer(body: ResponseBody) {
    match body {
        ResponseBody::Events { events, .. } => {
            let _ = event_times::oldest(&events);
            events.iter().for_each(|e| event(e));
        }
        ResponseBody::Subscribed {
            events, members, ..
        } => {
            let _ = event_times::oldest(&events);
            events.iter().for_each(|e| event(e));
            members.iter().for_each(|m| drop(m.to_member()));
        }
        ResponseBody::Redirect { members } => members.iter().for_each(|m| drop(m.to_member())),
        ResponseBody::Reconciled { message } => {
            let mut neg = Negentropy::owned(storage(32), FRAME_LIMIT).expect("a sealed set");
            neg.initiate().expect("the first message");
            let (mut have, mut need): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
            let _ = neg.reconcile_with_ids(&message, &mut have, &mut need);
        }
        ResponseBody::Ack { .. } | ResponseBody::Refused { .. } => {}
    }
}

/// One event's JSON text as the ingest path takes it.
fn event(json: &str) {
    let _ = event_times::created_at(json);
    let _ = validate_rendered(json, &limits(), now());
}

/// The bytes as a DHT record, as found; and, when they are an event, re-signed by the
/// fixture key so that the record's tags (PeerId, addresses) are read too.
fn home_record(json: &str) {
    let _ = HomeRecord::from_json(json, None);
    let Ok(event) = Event::from_json(json) else {
        return;
    };
    let signed = signer().sign(&event);
    let text = signed.as_json();
    let author = signer().keys().public_key();
    if let Ok(record) = HomeRecord::from_json(&text, Some(&author)) {
        assert_eq!(record.author, author);
        assert_eq!(record.json, text);
    }
}

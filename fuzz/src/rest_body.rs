//! `rest_body`: bytes as the body of NostrP2P's REST routes: `POST /req` (a JSON filter,
//! `starling_api::decode::parse_req`, the handler's own decoder) and `POST /publish`
//! (`publish_text`, then the ingest path's validation). An event in the body is also
//! written as `/req`'s answer (gzipped msgpack, `encode_req_answer`) and read back.
//!
//! Checks: a timeline query's limit is within `max_limit` and is the window's limit; a
//! stored-events query is one filter naming one author or one id; the gzipped msgpack
//! answer unpacks to the event's id, author, time, kind, tags and content, as NostrP2P's
//! client reads them. (The node decodes no msgpack or gzip from outside: requests are
//! JSON, and only the answer is msgpack.)

use std::io::Read;

use flate2::read::GzDecoder;
use rmpv::Value;
use starling_api::decode::{encode_req_answer, parse_req, publish_text, RestQuery};
use starling_proto::{validate_rendered, Event};

use crate::fixture::{limits, now};

pub fn run(data: &[u8]) {
    let limits = limits();
    match parse_req(data, &limits) {
        Ok(RestQuery::Timeline { window, limit }) => {
            assert!(limit <= limits.max_limit);
            assert_eq!(window.limit, Some(limit));
        }
        Ok(RestQuery::Stored(filters)) => {
            assert_eq!(filters.len(), 1);
            let f = &filters[0];
            assert!(f.ids.as_ref().map_or(0, |s| s.len()) <= 1);
            assert!(f.authors.as_ref().map_or(0, |s| s.len()) <= 1);
        }
        Ok(RestQuery::Nothing) | Err(_) => {}
    }
    if let Ok(text) = publish_text(data) {
        let _ = validate_rendered(text, &limits, now());
        if let Ok(event) = Event::from_json(text) {
            answer_round_trip(&event);
        }
    }
}

/// `/req`'s answer for `event` reads back as NostrP2P's client reads it.
fn answer_round_trip(event: &Event) {
    let body = encode_req_answer(std::slice::from_ref(event));
    let mut packed = Vec::new();
    GzDecoder::new(body.as_slice())
        .read_to_end(&mut packed)
        .expect("our own gzip decodes");
    let root = rmpv::decode::read_value(&mut packed.as_slice()).expect("our own msgpack");
    let evts = field(&root, "Evts").as_array().expect("Evts is an array");
    assert_eq!(evts.len(), 1);
    let e = &evts[0];
    assert_eq!(
        field(e, "Id").as_slice(),
        Some(event.id.as_bytes().as_slice())
    );
    assert_eq!(
        field(e, "Pubkey").as_slice(),
        Some(event.pubkey.to_bytes().as_slice())
    );
    assert_eq!(
        field(e, "Created_at").as_f64(),
        Some(event.created_at.as_secs() as f64)
    );
    assert_eq!(
        field(e, "Kind").as_u64(),
        Some(u64::from(event.kind.as_u16()))
    );
    assert_eq!(field(e, "Content").as_str(), Some(event.content.as_str()));
    let tags = field(e, "Tags").as_array().expect("Tags is an array");
    assert_eq!(tags.len(), event.tags.len());
    for (got, tag) in tags.iter().zip(event.tags.iter()) {
        let got: Vec<&[u8]> = got
            .as_array()
            .expect("a tag is an array")
            .iter()
            .map(|v| v.as_slice().expect("a tag element is bin"))
            .collect();
        let want: Vec<&[u8]> = tag.as_slice().iter().map(|s| s.as_bytes()).collect();
        assert_eq!(got, want);
    }
    assert_eq!(field(e, "Sig").as_slice().map(<[u8]>::len), Some(64));
}

fn field<'a>(map: &'a Value, key: &str) -> &'a Value {
    map.as_map()
        .expect("a msgpack map")
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in the answer"))
}

//! The `/req` answer's body: `{"Evts": [event, ...]}` in msgpack, each event a map with
//! NostrP2P's keys and types (bin ids, float `Created_at`, tags as arrays of bin), gzipped.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use rmpv::Value;
use starling_proto::Event;

fn bin(bytes: &[u8]) -> Value {
    Value::Binary(bytes.to_vec())
}

fn event_value(event: &Event) -> Value {
    let tags = event
        .tags
        .iter()
        .map(|tag| Value::Array(tag.as_slice().iter().map(|s| bin(s.as_bytes())).collect()))
        .collect();
    Value::Map(vec![
        ("Id".into(), bin(event.id.as_bytes())),
        ("Pubkey".into(), bin(event.pubkey.as_bytes())),
        (
            "Created_at".into(),
            Value::F64(event.created_at.as_secs() as f64),
        ),
        ("Kind".into(), Value::from(event.kind.as_u16())),
        ("Tags".into(), Value::Array(tags)),
        ("Content".into(), Value::from(event.content.as_str())),
        ("Sig".into(), bin(event.sig.as_bytes())),
    ])
}

/// The gzipped msgpack body for `events` (already in the order to send).
pub fn encode(events: &[Event]) -> Vec<u8> {
    let root = Value::Map(vec![(
        "Evts".into(),
        Value::Array(events.iter().map(event_value).collect()),
    )]);
    let mut packed = Vec::new();
    rmpv::encode::write_value(&mut packed, &root).expect("writing to a Vec cannot fail");
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&packed).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;

    #[test]
    fn encodes_nostrp2p_shapes() {
        let keys = Keys::generate();
        let event = EventBuilder::new(Kind::TextNote, "hi")
            .tag(Tag::public_key(keys.public_key()))
            .finalize(&keys)
            .unwrap();
        let mut packed = Vec::new();
        GzDecoder::new(encode(std::slice::from_ref(&event)).as_slice())
            .read_to_end(&mut packed)
            .unwrap();
        let root = rmpv::decode::read_value(&mut packed.as_slice()).unwrap();
        let evts = root.as_map().unwrap();
        assert_eq!(evts[0].0.as_str(), Some("Evts"));
        let e = evts[0].1.as_array().unwrap()[0].as_map().unwrap();
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "Id",
                "Pubkey",
                "Created_at",
                "Kind",
                "Tags",
                "Content",
                "Sig"
            ]
        );
        assert_eq!(e[0].1.as_slice(), Some(event.id.as_bytes().as_slice()));
        assert_eq!(e[2].1.as_f64(), Some(event.created_at.as_secs() as f64));
        let tag = e[4].1.as_array().unwrap()[0].as_array().unwrap();
        assert_eq!(tag[0].as_slice(), Some(b"p".as_slice()));
        assert_eq!(e[6].1.as_slice().map(<[u8]>::len), Some(64));
    }
}

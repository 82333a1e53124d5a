//! Fields of a stored event's JSON, read without parsing it. Every event the node stores
//! is its canonical JSON (see [`crate::RenderedEvent`]), which begins with fields of fixed
//! width: `{"id":"<64 hex>","pubkey":"<64 hex>","created_at":<n>,"kind":<n>,`. Reading
//! the pubkey or kind there skips scanning the tags and content, which is most of the
//! cost when a query's answer is screened event by event. Text in any other form is
//! parsed instead, so the answer is the same for any valid event JSON.

use nostr::prelude::PublicKey;

const ID_OPEN: &str = r#"{"id":""#;
const PUBKEY_OPEN: &str = r#"","pubkey":""#;
const CREATED_OPEN: &str = r#"","created_at":"#;
const KIND_OPEN: &str = r#","kind":"#;
const HEX: usize = 64;
const PUBKEY_AT: usize = ID_OPEN.len() + HEX + PUBKEY_OPEN.len();
const CREATED_AT: usize = PUBKEY_AT + HEX + CREATED_OPEN.len();

/// The event's `pubkey`; `None` if it has none that parses.
pub fn stored_pubkey(json: &str) -> Option<PublicKey> {
    match canonical_pubkey(json) {
        Some(hex) => PublicKey::from_hex(hex).ok(),
        None => crate::raw_event_pubkey(json),
    }
}

/// The event's `kind`; `None` if it has none that parses.
pub fn stored_kind(json: &str) -> Option<u16> {
    canonical_kind(json).or_else(|| crate::raw_event_kind(json))
}

/// The pubkey's hex when `json` starts in the canonical form.
fn canonical_pubkey(json: &str) -> Option<&str> {
    let canonical = json.get(..ID_OPEN.len())? == ID_OPEN
        && json.get(ID_OPEN.len() + HEX..PUBKEY_AT)? == PUBKEY_OPEN
        && json.get(PUBKEY_AT + HEX..CREATED_AT)? == CREATED_OPEN;
    canonical.then(|| json.get(PUBKEY_AT..PUBKEY_AT + HEX))?
}

/// The kind when `json` starts in the canonical form.
fn canonical_kind(json: &str) -> Option<u16> {
    canonical_pubkey(json)?;
    let rest = json.get(CREATED_AT..)?;
    let created = rest.find(|c: char| !c.is_ascii_digit())?;
    let rest = rest[created..].strip_prefix(KIND_OPEN)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    if !rest[digits..].starts_with(',') {
        return None;
    }
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    use super::*;
    use crate::RenderedEvent;

    #[test]
    fn reads_canonical_json_by_position() {
        let keys = Keys::generate();
        for kind in [0, 1, 7, 1059, 30_023, 65_535] {
            let event = EventBuilder::new(Kind::from(kind), "\"kind\":3, \"pubkey\":\"x\"")
                .tag(Tag::parse(["kind", "9"]).unwrap())
                .finalize(&keys)
                .unwrap();
            let json = RenderedEvent::new(event).json().to_owned();
            assert_eq!(canonical_kind(&json), Some(kind));
            assert_eq!(stored_kind(&json), Some(kind));
            assert_eq!(
                canonical_pubkey(&json),
                Some(keys.public_key().to_hex().as_str())
            );
            assert_eq!(stored_pubkey(&json), Some(keys.public_key()));
        }
    }

    #[test]
    fn parses_other_forms() {
        let keys = Keys::generate();
        let event = EventBuilder::new(Kind::Reaction, "+")
            .finalize(&keys)
            .unwrap();
        let reordered = format!(
            r#"{{"kind":7,"pubkey":"{}","id":"{}","created_at":1,"tags":[],"content":"+","sig":"{}"}}"#,
            keys.public_key().to_hex(),
            event.id.to_hex(),
            event.sig
        );
        let spaced = serde_json::to_string_pretty(&event).unwrap();
        for json in [reordered, spaced] {
            assert_eq!(canonical_pubkey(&json), None);
            assert_eq!(stored_pubkey(&json), Some(keys.public_key()));
            assert_eq!(stored_kind(&json), Some(7));
        }
        assert_eq!(stored_kind("{}"), None);
        assert_eq!(stored_pubkey("not json"), None);
    }
}

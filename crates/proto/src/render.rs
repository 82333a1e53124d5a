//! An event together with its canonical NIP-01 JSON text, rendered once at validation and
//! then shared by everything downstream: the store writes it as the stored row, the bus
//! hands it to live subscriptions and the network sends it to peers.
//!
//! Why not keep the client's own text? It may carry extra whitespace, unknown fields,
//! other key orders or other (equivalent) string escapes; starling has always stored and
//! served the canonical form, `serde_json::to_string(&event)`, and keeps doing so. Checking
//! that a client's text already is canonical costs about as much as rendering it.
//!
//! Rendering is nearly free instead: checking the event id means serializing
//! `[0,pubkey,created_at,kind,tags,content]` and hashing it (NIP-01), and that preimage
//! already holds the expensive part of the event JSON — the escaped tags and content. The
//! event JSON is assembled from those bytes and the fixed-form fields (hex id, pubkey and
//! signature, two integers) without escaping anything a second time. The id check itself
//! is the same as `nostr`'s `Event::verify_id` (same preimage bytes, same SHA-256); the
//! tests below hold both equalities on awkward content.

use nostr::prelude::{Event, EventId};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A parsed event and its canonical JSON (exactly `serde_json::to_string(&event)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEvent {
    event: Event,
    json: String,
}

impl RenderedEvent {
    /// Renders `event`'s JSON (no validation).
    pub fn new(event: Event) -> Self {
        Self::render(event).0
    }

    /// Renders `event`'s JSON and computes the id its content hashes to (NIP-01), which a
    /// valid event carries as its `id`.
    pub(crate) fn render(event: Event) -> (Self, EventId) {
        let mut preimage = Vec::with_capacity(256 + event.content.len());
        preimage.extend_from_slice(b"[0,");
        put(&mut preimage, &event.pubkey);
        preimage.push(b',');
        put(&mut preimage, &event.created_at);
        preimage.push(b',');
        put(&mut preimage, &event.kind);
        preimage.push(b',');
        let tags_at = preimage.len();
        put(&mut preimage, &event.tags);
        let tags_end = preimage.len();
        preimage.push(b',');
        put(&mut preimage, &event.content);
        let content_end = preimage.len();
        preimage.push(b']');
        let id = EventId::from_byte_array(Sha256::digest(&preimage).into());

        // {"id":…,"pubkey":…,"created_at":…,"kind":…,"tags":…,"content":…,"sig":…}
        let mut json = Vec::with_capacity(preimage.len() + 240);
        json.extend_from_slice(b"{\"id\":");
        put(&mut json, &event.id);
        json.extend_from_slice(b",\"pubkey\":");
        put(&mut json, &event.pubkey);
        json.extend_from_slice(b",\"created_at\":");
        put(&mut json, &event.created_at);
        json.extend_from_slice(b",\"kind\":");
        put(&mut json, &event.kind);
        json.extend_from_slice(b",\"tags\":");
        json.extend_from_slice(&preimage[tags_at..tags_end]);
        json.extend_from_slice(b",\"content\":");
        json.extend_from_slice(&preimage[tags_end + 1..content_end]);
        json.extend_from_slice(b",\"sig\":");
        put(&mut json, &event.sig);
        json.push(b'}');
        let json = String::from_utf8(json).expect("serde_json writes UTF-8");
        (Self { event, json }, id)
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event's canonical JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The event and its JSON, taken apart.
    pub fn into_parts(self) -> (Event, String) {
        (self.event, self.json)
    }
}

/// Appends `value`'s compact JSON, as `serde_json::to_writer` writes it inside any
/// compact array or object.
fn put(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("event fields always serialize");
}

#[cfg(test)]
mod tests {
    use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp};

    use super::*;

    /// Content and tags that exercise every escape serde_json writes, and some it doesn't.
    fn awkward_events() -> Vec<Event> {
        let keys = Keys::generate();
        let texts = [
            "",
            "plain",
            "quote \" backslash \\ slash / tab \t newline \n cr \r",
            "controls \u{0} \u{1} \u{8} \u{c} \u{1f} \u{7f}",
            "unicode é ü 中文 🐦 \u{2028} \u{2029} \u{feff}",
            "\"],\"content\":\"fake\"",
        ];
        let mut events = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let tags = [
                Tag::hashtag(*text),
                Tag::parse(["x", text, "", "more \"quoted\""]).unwrap(),
                Tag::parse(["e"]).unwrap(),
            ];
            for kind in [Kind::TextNote, Kind::Custom(30_023), Kind::Custom(65_535)] {
                let event = EventBuilder::new(kind, *text)
                    .tags(tags.iter().take(i % 4).cloned())
                    .custom_created_at(Timestamp::from(i as u64 * 1_000_000_007))
                    .finalize(&keys)
                    .unwrap();
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn renders_exactly_what_serde_json_writes() {
        for event in awkward_events() {
            let (rendered, _) = RenderedEvent::render(event.clone());
            assert_eq!(rendered.json(), serde_json::to_string(&event).unwrap());
            assert_eq!(rendered.event(), &event);
            let back: Event = serde_json::from_str(rendered.json()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn computes_the_id_as_nostr_does() {
        for event in awkward_events() {
            let (_, id) = RenderedEvent::render(event.clone());
            assert_eq!(id, event.id);
            assert!(event.verify_id());
            let expected = EventId::compute(
                &event.pubkey,
                &event.created_at,
                &event.kind,
                &event.tags,
                &format!("{} changed", event.content),
            );
            let mut changed = event.clone();
            changed.content.push_str(" changed");
            let (_, id) = RenderedEvent::render(changed.clone());
            assert_eq!(id, expected);
            assert_ne!(id, changed.id);
            assert!(!changed.verify_id());
        }
    }
}

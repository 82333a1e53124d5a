//! NIP-42 authentication on the local relay, and what it unlocks: gift wraps (NIP-59,
//! kind 1059, the envelopes of NIP-17 private messages).
//!
//! A gift wrap names its recipient in a `p` tag and is signed by a one-time key, so the
//! store cannot keep it from anyone by author. The relay serves a gift wrap only to a
//! connection that authenticated as the node's owner, and only one addressed to the
//! owner (wraps the node keeps for others, as a member of their home set, are theirs).
//! An authenticated owner's connection may also publish gift wraps (they are not signed by
//! the owner's key). The challenge is sent when a client first needs it: a REQ, COUNT or
//! NEG-OPEN that asks for kind 1059 by name, or a gift wrap published before AUTH; a
//! client that never touches gift wraps never sees an `AUTH` message.

use std::collections::BTreeSet;

use rand::RngCore;
use starling_core::Remote;
use starling_proto::{
    raw_event_kind, stored_kind, validate_event, Event, Filter, Kind, Limits, PublicKey,
    SingleLetterTag, Timestamp,
};

/// How far an AUTH event's `created_at` may be from now.
const MAX_SKEW_SECS: u64 = 600;

/// One connection's authentication.
#[derive(Debug, Default)]
pub struct Auth {
    challenge: Option<String>,
    authed: Option<PublicKey>,
}

/// The `CLOSED` / `OK` message for a request that needs the owner's authentication.
pub const AUTH_REQUIRED: &str =
    "auth-required: gift wraps (kind 1059) are for this node's owner: authenticate (NIP-42)";

impl Auth {
    /// Whether the connection authenticated as `owner`.
    pub fn is(&self, owner: &PublicKey) -> bool {
        self.authed.as_ref() == Some(owner)
    }

    /// The connection's challenge, made on first use; `true` the first time (it must be
    /// sent to the client then).
    pub fn challenge(&mut self) -> (String, bool) {
        if let Some(c) = &self.challenge {
            return (c.clone(), false);
        }
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let c = hex::encode(bytes);
        self.challenge = Some(c.clone());
        (c, true)
    }

    /// Checks an AUTH event: a valid kind-22242 event, recent, naming this connection's
    /// challenge. On success the connection is authenticated as its author.
    pub fn verify(&mut self, raw: &str, limits: &Limits) -> Result<PublicKey, String> {
        let now = Timestamp::now();
        let event = validate_event(raw, limits, now).map_err(|e| format!("invalid: {e}"))?;
        if event.kind != Kind::Authentication {
            return Err("invalid: AUTH takes a kind 22242 event".into());
        }
        if event.created_at.as_secs().abs_diff(now.as_secs()) > MAX_SKEW_SECS {
            return Err("invalid: the AUTH event is not recent".into());
        }
        let Some(expected) = &self.challenge else {
            return Err("invalid: no challenge was issued on this connection".into());
        };
        let named = event.tags.iter().any(|t| {
            let s = t.as_slice();
            s.len() >= 2 && s[0] == "challenge" && &s[1] == expected
        });
        if !named {
            return Err("invalid: the AUTH event does not name this connection's challenge".into());
        }
        self.authed = Some(event.pubkey);
        Ok(event.pubkey)
    }
}

/// Queues a gift wrap the authenticated owner published (and was stored) for delivery
/// to its recipient; the owner's own events go out through the outbox's own watch.
pub async fn deliver_wrap(remote: &dyn Remote, raw: &str) -> Result<(), String> {
    if raw_event_kind(raw) != Some(Kind::GiftWrap.as_u16()) {
        return Ok(());
    }
    let event = Event::from_json(raw).map_err(|e| e.to_string())?;
    remote.send_private(&event, raw).await
}

/// Whether a reader may see `event`: everything but gift wraps, and to the owner (`owner`
/// set when the reader authenticated as the owner) the gift wraps addressed to them.
pub fn may_see(event: &Event, owner: Option<&PublicKey>) -> bool {
    if event.kind != Kind::GiftWrap {
        return true;
    }
    owner.is_some_and(|o| tags_p(event, o))
}

/// As [`may_see`], for an event's JSON text (a stored event, already valid): only a gift
/// wrap is parsed further than its kind.
pub fn json_may_see(json: &str, owner: Option<&PublicKey>) -> bool {
    match stored_kind(json) {
        Some(k) if k != Kind::GiftWrap.as_u16() => true,
        Some(_) => Event::from_json(json).is_ok_and(|e| may_see(&e, owner)),
        None => false,
    }
}

fn tags_p(event: &Event, user: &PublicKey) -> bool {
    let hex = user.to_hex();
    event.tags.iter().any(|t| {
        let s = t.as_slice();
        s.len() >= 2 && s[0] == "p" && s[1] == hex
    })
}

/// Whether some filter names kind 1059 (a client asking for gift wraps on purpose).
pub fn asks_for_wraps(filters: &[Filter]) -> bool {
    filters.iter().any(|f| {
        f.kinds
            .as_ref()
            .is_some_and(|k| k.contains(&Kind::GiftWrap))
    })
}

/// Whether `filter` can match a gift wrap (it names no kinds, or kind 1059).
pub fn may_match_wraps(filter: &Filter) -> bool {
    filter
        .kinds
        .as_ref()
        .is_none_or(|k| k.contains(&Kind::GiftWrap))
}

/// The part of `filter` that matches gift wraps, or `None` when there is none.
pub fn wraps_of(filter: &Filter) -> Option<Filter> {
    may_match_wraps(filter).then(|| filter.clone().kinds([Kind::GiftWrap]))
}

/// The part of `filter` that matches gift wraps addressed to `owner`.
pub fn owner_wraps_of(filter: &Filter, owner: &PublicKey) -> Option<Filter> {
    let mut f = wraps_of(filter)?;
    let p = SingleLetterTag::LOWERCASE_P;
    let hex = owner.to_hex();
    if f.generic_tags
        .get(&p)
        .is_some_and(|set| !set.contains(&hex))
    {
        return None;
    }
    f.generic_tags.insert(p, BTreeSet::from([hex]));
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Tag};

    fn wrap_to(recipient: &PublicKey) -> Event {
        EventBuilder::new(Kind::GiftWrap, "ciphertext")
            .tags([Tag::public_key(*recipient)])
            .finalize(&Keys::generate())
            .unwrap()
    }

    #[test]
    fn only_the_owner_sees_wraps_and_only_their_own() {
        let owner = Keys::generate().public_key();
        let other = Keys::generate().public_key();
        let mine = wrap_to(&owner);
        let theirs = wrap_to(&other);
        let note = EventBuilder::new(Kind::TextNote, "hi")
            .finalize(&Keys::generate())
            .unwrap();
        assert!(may_see(&note, None));
        assert!(!may_see(&mine, None));
        assert!(may_see(&mine, Some(&owner)));
        assert!(!may_see(&theirs, Some(&owner)));
        assert!(!json_may_see(&mine.as_json(), None));
        assert!(json_may_see(&mine.as_json(), Some(&owner)));
        assert!(json_may_see(&note.as_json(), None));
    }

    #[test]
    fn wrap_parts_of_filters() {
        let owner = Keys::generate().public_key();
        let other = Keys::generate().public_key();
        assert!(wraps_of(&Filter::new().kind(Kind::TextNote)).is_none());
        let any = wraps_of(&Filter::new().limit(5)).unwrap();
        assert_eq!(any.kinds, Some(BTreeSet::from([Kind::GiftWrap])));
        assert!(owner_wraps_of(&Filter::new().pubkey(other), &owner).is_none());
        let f = owner_wraps_of(&Filter::new().pubkeys([owner, other]), &owner).unwrap();
        let p = SingleLetterTag::LOWERCASE_P;
        assert_eq!(f.generic_tags[&p], BTreeSet::from([owner.to_hex()]));
        assert!(asks_for_wraps(&[Filter::new().kinds([Kind::GiftWrap])]));
        assert!(!asks_for_wraps(&[Filter::new()]));
    }
}

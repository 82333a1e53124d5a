//! NIP-17 private messages, without I/O: a kind-14 message sealed and gift-wrapped (NIP-59,
//! NIP-44) once per participant, and the reverse: opening the wraps addressed to a key
//! and grouping the messages into conversations (a conversation is its set of
//! participants, as NIP-17 defines it). The CLI and the web client's API both use it.

use std::collections::{BTreeMap, BTreeSet};

use nostr::nips::nip59::{GiftWrapBuilder, UnwrappedGift};
use nostr::prelude::{
    Event, EventBuilder, FinalizeEvent, FinalizeUnsignedEvent, Keys, Kind, PublicKey, Tag,
    Timestamp,
};

/// People in one conversation at most.
pub const MAX_PARTICIPANTS: usize = 50;

/// Why a message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("name at least one recipient other than yourself")]
    NoRecipient,
    #[error("a conversation has at most {MAX_PARTICIPANTS} participants")]
    TooMany,
    #[error("the message is empty")]
    Empty,
    #[error("sealing or wrapping the message failed: {0}")]
    Wrap(String),
}

/// One opened message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub sender: PublicKey,
    /// Everyone in the conversation (sender and recipients), the reader included.
    pub participants: BTreeSet<PublicKey>,
    pub created_at: Timestamp,
    pub text: String,
}

/// The gift wraps that carry `text` from `keys` to `recipients` (a group when several):
/// one per recipient and one for the sender's own history. Returns the message's id
/// (the rumor's, hex) and the wraps.
pub fn wraps_for(
    keys: &Keys,
    recipients: &[PublicKey],
    text: &str,
) -> Result<(String, Vec<Event>), DmError> {
    let me = keys.public_key();
    if text.trim().is_empty() {
        return Err(DmError::Empty);
    }
    let others: BTreeSet<PublicKey> = recipients.iter().copied().filter(|p| *p != me).collect();
    if others.is_empty() {
        return Err(DmError::NoRecipient);
    }
    if others.len() + 1 > MAX_PARTICIPANTS {
        return Err(DmError::TooMany);
    }
    let rumor = EventBuilder::new(Kind::PrivateDirectMessage, text)
        .tags(others.iter().map(|p| Tag::public_key(*p)))
        .finalize_unsigned(me);
    let id = rumor.id.map(|id| id.to_hex()).unwrap_or_default();
    let wraps = others
        .iter()
        .copied()
        .chain([me])
        .map(|to| {
            GiftWrapBuilder::new(to, rumor.clone())
                .finalize(keys)
                .map_err(|e| DmError::Wrap(e.to_string()))
        })
        .collect::<Result<Vec<Event>, DmError>>()?;
    Ok((id, wraps))
}

/// Opens a gift wrap addressed to `keys`: the NIP-17 message inside, or `None` when it is
/// not one (another kind, a seal whose signer is not the message's author, or not for us).
pub fn open(keys: &Keys, wrap: &Event) -> Option<Message> {
    let gift = UnwrappedGift::from_gift_wrap(keys, wrap).ok()?;
    if gift.rumor.kind != Kind::PrivateDirectMessage || gift.rumor.pubkey != gift.sender {
        return None;
    }
    let mut participants: BTreeSet<PublicKey> = gift
        .rumor
        .tags
        .iter()
        .filter_map(|t| {
            let s = t.as_slice();
            (s.len() >= 2 && s[0] == "p")
                .then(|| PublicKey::from_hex(&s[1]).ok())
                .flatten()
        })
        .take(MAX_PARTICIPANTS)
        .collect();
    participants.insert(gift.sender);
    participants.insert(keys.public_key());
    Some(Message {
        sender: gift.sender,
        participants,
        created_at: gift.rumor.created_at,
        text: gift.rumor.content,
    })
}

/// Opens `wraps`, oldest message first, one copy of each; also counts the wraps that did
/// not open.
pub fn open_all(keys: &Keys, wraps: &[Event]) -> (Vec<Message>, usize) {
    let mut messages = Vec::with_capacity(wraps.len());
    let mut unreadable = 0;
    for wrap in wraps {
        match open(keys, wrap) {
            Some(m) => messages.push(m),
            None => unreadable += 1,
        }
    }
    messages.sort_by(|a, b| (a.created_at, &a.text).cmp(&(b.created_at, &b.text)));
    messages.dedup();
    (messages, unreadable)
}

/// Messages grouped by conversation (its set of participants), each oldest first.
pub fn conversations(messages: &[Message]) -> BTreeMap<BTreeSet<PublicKey>, Vec<&Message>> {
    let mut by: BTreeMap<BTreeSet<PublicKey>, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        by.entry(m.participants.clone()).or_default().push(m);
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_message_opens_for_every_participant_and_nobody_else() {
        let (alice, bob, carol) = (Keys::generate(), Keys::generate(), Keys::generate());
        let (_, wraps) = wraps_for(
            &alice,
            &[bob.public_key(), carol.public_key()],
            "hello both",
        )
        .unwrap();
        assert_eq!(wraps.len(), 3, "bob, carol and alice's own copy");
        let everyone = BTreeSet::from([alice.public_key(), bob.public_key(), carol.public_key()]);
        for keys in [&alice, &bob, &carol] {
            let (msgs, unreadable) = open_all(keys, &wraps);
            assert_eq!(unreadable, 2, "two of the three wraps are for the others");
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].text, "hello both");
            assert_eq!(msgs[0].sender, alice.public_key());
            assert_eq!(msgs[0].participants, everyone);
        }
        let (msgs, _) = open_all(&Keys::generate(), &wraps);
        assert!(msgs.is_empty());
        for w in &wraps {
            assert!(!w.as_json().contains("hello both"));
            assert_ne!(
                w.pubkey,
                alice.public_key(),
                "wraps are signed by one-time keys"
            );
        }
    }

    #[test]
    fn refuses_empty_and_self_only_messages() {
        let alice = Keys::generate();
        assert!(matches!(
            wraps_for(&alice, &[alice.public_key()], "x"),
            Err(DmError::NoRecipient)
        ));
        assert!(matches!(
            wraps_for(&alice, &[Keys::generate().public_key()], "  "),
            Err(DmError::Empty)
        ));
    }
}

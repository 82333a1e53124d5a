//! What peers may push to this node (DESIGN.md's write rule): events of authors the owner
//! follows, events that tag the owner (replies, mentions, reactions), and the owner's own
//! events. Everything else is refused with a reason; that is not a violation (the sender
//! may have an old follow list), unlike a bad signature. Answers to this node's own
//! requests (subscriptions, fetches) pass [`ingest_by_author`]: only the author asked for.

use std::collections::HashSet;
use std::sync::Arc;

use starling_core::{Ingest, Origin};
use starling_proto::{Event, PublicKey};
use tokio::sync::watch;

/// The set of authors the owner follows, published by the follow task.
pub type Follows = watch::Receiver<Arc<HashSet<PublicKey>>>;

/// The write policy for pushes from peers.
#[derive(Debug, Clone)]
pub struct Policy {
    owner: PublicKey,
    follows: Follows,
}

impl Policy {
    pub fn new(owner: PublicKey, follows: Follows) -> Self {
        Self { owner, follows }
    }

    /// The node's owner.
    pub fn owner(&self) -> PublicKey {
        self.owner
    }

    /// Whether a peer may push `event` to this node.
    pub fn may_push(&self, event: &Event) -> Result<(), String> {
        if self.allows(&event.pubkey, tagged_pubkeys(event)) {
            Ok(())
        } else {
            Err("this node takes only events of authors its owner follows or events addressed to its owner".into())
        }
    }

    /// The rule behind [`Policy::may_push`], on an event's author and `p`-tagged keys.
    pub fn allows(&self, author: &PublicKey, mut tagged: impl Iterator<Item = PublicKey>) -> bool {
        *author == self.owner
            || self.follows.borrow().contains(author)
            || tagged.any(|pk| pk == self.owner)
    }
}

/// Whether `event` has a `p` tag naming `owner`.
pub fn tags_owner(event: &Event, owner: &PublicKey) -> bool {
    tagged_pubkeys(event).any(|pk| &pk == owner)
}

/// The public keys named by `event`'s `p` tags (malformed ones skipped).
pub fn tagged_pubkeys(event: &Event) -> impl Iterator<Item = PublicKey> + '_ {
    p_tag_keys(event.tags.iter().map(|tag| tag.as_slice()))
}

/// The public keys named by the `p` tags among `tags` (malformed ones skipped).
pub fn p_tag_keys<'a, I: IntoIterator<Item = &'a [String]>>(
    tags: I,
) -> impl Iterator<Item = PublicKey> + use<'a, I> {
    tags.into_iter().filter_map(|tag| match tag {
        [name, value, ..] if name == "p" => PublicKey::from_hex(value).ok(),
        _ => None,
    })
}

/// Ingests events a peer sent in answer to a request for `author`'s events, refusing any
/// by someone else. Returns how many were newly stored.
pub async fn ingest_by_author(ingest: &Ingest, events: &[String], author: PublicKey) -> usize {
    ingest_answer(ingest, events, |e| {
        if e.pubkey == author {
            Ok(())
        } else {
            Err("not by the author asked for".into())
        }
    })
    .await
}

/// Ingests events a peer sent in answer to a request, each first passing `check` (what was
/// asked for). Returns how many were newly stored.
pub async fn ingest_answer(
    ingest: &Ingest,
    events: &[String],
    check: impl Fn(&Event) -> Result<(), String>,
) -> usize {
    let mut stored = 0;
    for json in events {
        let result = ingest.submit_checked(json, Origin::Network, &check).await;
        if matches!(result, Ok(ack) if !ack.duplicate) {
            stored += 1;
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};

    #[test]
    fn follows_mentions_and_strangers() {
        let owner = Keys::generate();
        let friend = Keys::generate();
        let stranger = Keys::generate();
        let (tx, rx) = watch::channel(Arc::new(HashSet::from([friend.public_key()])));
        let policy = Policy::new(owner.public_key(), rx);
        let post = |k: &Keys, tags: Vec<Tag>| {
            EventBuilder::new(Kind::TextNote, "hi")
                .tags(tags)
                .finalize(k)
                .unwrap()
        };
        assert!(policy.may_push(&post(&friend, vec![])).is_ok());
        assert!(policy.may_push(&post(&stranger, vec![])).is_err());
        let reply = post(&stranger, vec![Tag::public_key(owner.public_key())]);
        assert!(policy.may_push(&reply).is_ok());
        tx.send(Arc::new(HashSet::new())).unwrap();
        assert!(policy.may_push(&post(&friend, vec![])).is_err());
    }
}

//! Gift wraps (NIP-59, kind 1059: the envelopes of NIP-17 private messages) that the
//! owner's client published. A wrap is signed by a one-time key, so the outbox cannot
//! find it by author on the bus or in a rescan: the client edge queues it here, durably,
//! before it answers the client. A wrap addressed to another user goes to that user's
//! node and to their home set (their inbox, so it arrives when they return even if this
//! node is gone by then); the copy addressed to the owner goes to the owner's home set,
//! so the owner's history survives this node and reaches the owner's other devices.

use std::sync::Arc;

use starling_proto::{Event, Kind, PublicKey};
use tokio::sync::Notify;
use tracing::debug;

use super::{home_target, now, OutboxDb, Queued};
use crate::policy::tagged_pubkeys;
use crate::NetError;

/// Recipients one wrap may name (NIP-59 wraps name one; a few more are tolerated).
const MAX_RECIPIENTS: usize = 8;

/// Where a wrap goes: each named recipient's node and home set, or the owner's home set
/// for the owner's own copy. Empty for anything that is not a gift wrap.
pub fn wrap_targets(owner: &PublicKey, wrap: &Event) -> Vec<String> {
    if wrap.kind != Kind::GiftWrap {
        return Vec::new();
    }
    let mut targets = Vec::new();
    for pk in tagged_pubkeys(wrap).take(MAX_RECIPIENTS) {
        if pk == *owner {
            targets.push(home_target(owner));
        } else {
            targets.push(pk.to_hex());
            targets.push(home_target(&pk));
        }
    }
    targets.sort();
    targets.dedup();
    targets
}

/// Queues a wrap the owner published for delivery (idempotent: a wrap queued before is
/// not queued again) and wakes the outbox.
pub async fn queue_wrap(
    db: &OutboxDb,
    wake: &Arc<Notify>,
    owner: &PublicKey,
    wrap: &Event,
    json: &str,
) -> Result<(), NetError> {
    let targets = wrap_targets(owner, wrap);
    if targets.is_empty() {
        return Err(NetError::Request(
            "a gift wrap must name its recipient in a p tag".into(),
        ));
    }
    let queued = Queued {
        at: wrap.created_at.as_secs() as i64,
        event_id: wrap.id.to_hex(),
        json: json.to_owned(),
        targets,
    };
    let n = db.enqueue(vec![queued], now()).await?;
    if n > 0 {
        debug!(id = %wrap.id, targets = n, "gift wrap queued for delivery");
        wake.notify_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::{EventBuilder, FinalizeEvent, Keys, Tag};

    #[test]
    fn wraps_go_to_the_recipient_and_their_inbox_and_the_own_copy_home() {
        let owner = Keys::generate().public_key();
        let bob = Keys::generate().public_key();
        let wrap = |to: PublicKey| {
            EventBuilder::new(Kind::GiftWrap, "x")
                .tags([Tag::public_key(to)])
                .finalize(&Keys::generate())
                .unwrap()
        };
        let mut expected = vec![bob.to_hex(), home_target(&bob)];
        expected.sort();
        assert_eq!(wrap_targets(&owner, &wrap(bob)), expected);
        assert_eq!(
            wrap_targets(&owner, &wrap(owner)),
            vec![home_target(&owner)]
        );
        let note = EventBuilder::new(Kind::TextNote, "x")
            .tags([Tag::public_key(bob)])
            .finalize(&Keys::generate())
            .unwrap();
        assert!(wrap_targets(&owner, &note).is_empty());
    }
}

//! `negentropy`: bytes as a peer's negentropy message (NIP-77 and the node-to-node
//! `Reconcile` rounds), after a first byte that picks the size of our set (0 to 255
//! events). The message goes to the three places starling reads one: the answering side
//! of `starling_net::reconcile::answer` (a fresh instance per round), the relay's
//! `NegSessions` (a NEG-OPEN's initial message, then the same bytes as a NEG-MSG), and the
//! initiating side after its first message (`reconcile_with_ids`, as in
//! `starling_net::reconcile::reconcile`).
//!
//! Checks: answers stay within the frame size limit (plus one range's overhead); the ids
//! the initiator "has" are ids of our set. (The ids it "needs" may include ids it holds: a
//! peer can list them outside the range they belong to. `reconcile` then fetches events
//! it already has, which ingest takes as duplicates; the first run of this target found
//! that, and the check was dropped as not a property of the protocol.)

use std::collections::HashSet;

use negentropy::{Id, Negentropy};
use starling_api::decode::{NegSessions, FRAME_SIZE_LIMIT};
use starling_net::reconcile::FRAME_LIMIT;
use starling_proto::SubscriptionId;
use tokio::time::Instant;

use crate::fixture::{event_keys, storage};

/// Room a negentropy answer may take past the frame limit: the closing range (a bound
/// and a fingerprint) it adds when it stops early.
const FRAME_SLACK: u64 = 128;

pub fn run(data: &[u8]) {
    let Some((&size, message)) = data.split_first() else {
        return;
    };
    let n = usize::from(size);

    let mut answering = Negentropy::owned(storage(n), FRAME_LIMIT).expect("a sealed set");
    if let Ok(answer) = answering.reconcile(message) {
        assert!(answer.len() as u64 <= FRAME_LIMIT + FRAME_SLACK);
    }

    let mut sessions = NegSessions::new(2, 1_000);
    let sub = SubscriptionId::new("fuzz");
    let at = Instant::now();
    if let Ok(answer) = sessions.open(sub.clone(), storage(n), n, message, at) {
        assert!(answer.len() as u64 <= FRAME_SIZE_LIMIT + FRAME_SLACK);
        let _ = sessions.reconcile(&sub, message, at);
    }

    let mut initiating = Negentropy::owned(storage(n), FRAME_LIMIT).expect("a sealed set");
    initiating.initiate().expect("the first message");
    let (mut have, mut need): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
    if let Ok(next) = initiating.reconcile_with_ids(message, &mut have, &mut need) {
        if let Some(next) = next {
            assert!(next.len() as u64 <= FRAME_LIMIT + FRAME_SLACK);
        }
        let ours: HashSet<Id> = event_keys(n)
            .iter()
            .map(|k| Id::from_byte_array(k.id))
            .collect();
        assert!(
            have.iter().all(|id| ours.contains(id)),
            "have names an id we lack"
        );
    }
}

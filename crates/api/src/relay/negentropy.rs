//! One connection's NIP-77 negentropy sessions, without I/O. A `NEG-OPEN` builds the set of
//! the events its filter matches once (the session reads the keys from the store and seals
//! them with `starling_store::negentropy_storage`) and keeps a negentropy instance over it
//! under the subscription id; each `NEG-MSG` runs one round on that instance. The relay is
//! always the responding side: it never learns or sends ids, it only answers the client's
//! ranges so that the client finds its `have` and `need` ids.
//!
//! Bounds: at most `max_sessions` sessions and `max_items` items across them per
//! connection, and a session idle for [`IDLE_TIMEOUT`] is dropped. Time comes in as an
//! argument, so the bounds are tested without waiting.

use std::collections::HashMap;
use std::time::Duration;

use negentropy::{Negentropy, NegentropyStorageVector};
use starling_proto::SubscriptionId;
use starling_store::StoreError;
use tokio::time::Instant;

/// Largest negentropy message the relay sends, in bytes before hex encoding. A larger
/// difference takes more rounds.
pub const FRAME_SIZE_LIMIT: u64 = 64 * 1024;

/// Most items one connection's sessions hold together.
pub const MAX_ITEMS: usize = 500_000;

/// How long a session may go without a message before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a negentropy request was refused. The text is the `NEG-ERR` reason, prefixed as
/// NIP-01 prefixes `CLOSED` reasons.
#[derive(Debug, thiserror::Error)]
pub enum NegError {
    #[error("invalid: {0}")]
    BadFilter(String),
    #[error("invalid: {0}")]
    Shape(&'static str),
    #[error("error: the message is not valid hex: {0}")]
    BadHex(#[source] hex::FromHexError),
    #[error("error: bad negentropy message: {0}")]
    Protocol(#[source] negentropy::Error),
    #[error("closed: no open negentropy session with this id")]
    UnknownSession,
    #[error("closed: the session was idle for more than {} s", IDLE_TIMEOUT.as_secs())]
    Idle,
    #[error("blocked: too many negentropy sessions on this connection (the limit is {0})")]
    TooManySessions(usize),
    #[error(
        "blocked: too many records (more than {0} events, the room left of this connection's \
         limit of {MAX_ITEMS}); narrow the filter"
    )]
    TooManyRecords(usize),
    #[error("error: could not read the store: {0}")]
    Store(#[source] StoreError),
    #[error("error: could not build the set: {0}")]
    Set(#[source] negentropy::Error),
    #[error("error: internal error while building the set")]
    Internal,
    #[error("{0}")]
    RateLimited(&'static str),
}

/// One open session: the relay's side of a reconciliation.
struct NegSession {
    neg: Negentropy<'static, NegentropyStorageVector>,
    items: usize,
    last_used: Instant,
}

/// The open sessions of one connection.
pub struct NegSessions {
    open: HashMap<SubscriptionId, NegSession>,
    max_sessions: usize,
    max_items: usize,
}

impl NegSessions {
    pub fn new(max_sessions: usize, max_items: usize) -> Self {
        Self {
            open: HashMap::new(),
            max_sessions,
            max_items,
        }
    }

    /// Readies a `NEG-OPEN` of `sub_id`: drops a session of that id (an open replaces it)
    /// and idle ones, then returns how many items the new set may hold.
    pub fn prepare_open(
        &mut self,
        sub_id: &SubscriptionId,
        now: Instant,
    ) -> Result<usize, NegError> {
        self.open.remove(sub_id);
        self.drop_idle(now);
        if self.open.len() >= self.max_sessions {
            return Err(NegError::TooManySessions(self.max_sessions));
        }
        let used: usize = self.open.values().map(|s| s.items).sum();
        Ok(self.max_items.saturating_sub(used))
    }

    /// Opens a session over `storage` (a sealed set of `items` items, no more than
    /// [`NegSessions::prepare_open`] allowed) and answers the client's initial message.
    pub fn open(
        &mut self,
        sub_id: SubscriptionId,
        storage: NegentropyStorageVector,
        items: usize,
        initial: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, NegError> {
        let mut neg = Negentropy::owned(storage, FRAME_SIZE_LIMIT).map_err(NegError::Set)?;
        let reply = neg.reconcile(initial).map_err(NegError::Protocol)?;
        self.open.insert(
            sub_id,
            NegSession {
                neg,
                items,
                last_used: now,
            },
        );
        Ok(reply)
    }

    /// Runs one round of `sub_id`'s session. A failed round ends the session (NIP-77: after
    /// a `NEG-ERR` the subscription is closed).
    pub fn reconcile(
        &mut self,
        sub_id: &SubscriptionId,
        message: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, NegError> {
        let session = self.open.get_mut(sub_id).ok_or(NegError::UnknownSession)?;
        let result = if now.duration_since(session.last_used) > IDLE_TIMEOUT {
            Err(NegError::Idle)
        } else {
            session.last_used = now;
            session.neg.reconcile(message).map_err(NegError::Protocol)
        };
        if result.is_err() {
            self.open.remove(sub_id);
        }
        self.drop_idle(now);
        result
    }

    /// Ends `sub_id`'s session, if open.
    pub fn close(&mut self, sub_id: &SubscriptionId) {
        self.open.remove(sub_id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }

    fn drop_idle(&mut self, now: Instant) {
        self.open
            .retain(|_, s| now.duration_since(s.last_used) <= IDLE_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use negentropy::Id;
    use starling_store::{negentropy_storage, EventKey};

    use super::*;

    fn id(i: u32) -> [u8; 32] {
        let mut id = [0xab; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        id
    }

    fn keys(range: Range<u32>) -> Vec<EventKey> {
        range
            .map(|i| EventKey {
                created_at: 1_000 + u64::from(i % 7),
                id: id(i),
            })
            .collect()
    }

    fn ids(range: Range<u32>) -> Vec<Id> {
        let mut v: Vec<Id> = range.map(|i| Id::from_byte_array(id(i))).collect();
        v.sort();
        v
    }

    fn sub(id: &str) -> SubscriptionId {
        SubscriptionId::new(id)
    }

    /// Opens `id` over `relay_keys` and reconciles a client holding `client_keys` to the
    /// end; returns the client's (have, need) ids and the rounds it took.
    fn sync(
        sessions: &mut NegSessions,
        id: &str,
        relay_keys: &[EventKey],
        client_keys: &[EventKey],
        now: Instant,
    ) -> (Vec<Id>, Vec<Id>, usize) {
        let room = sessions.prepare_open(&sub(id), now).unwrap();
        assert!(relay_keys.len() <= room);
        let storage = negentropy_storage(relay_keys).unwrap();
        let mut client = Negentropy::owned(negentropy_storage(client_keys).unwrap(), 0).unwrap();
        let mut msg = client.initiate().unwrap();
        msg = sessions
            .open(sub(id), storage, relay_keys.len(), &msg, now)
            .unwrap();
        let (mut have, mut need, mut rounds) = (Vec::new(), Vec::new(), 1);
        while let Some(next) = client
            .reconcile_with_ids(&msg, &mut have, &mut need)
            .unwrap()
        {
            msg = sessions.reconcile(&sub(id), &next, now).unwrap();
            assert!(msg.len() as u64 <= FRAME_SIZE_LIMIT);
            rounds += 1;
        }
        // A cut frame makes the client look at ranges of earlier rounds again, so an id
        // can be reported more than once: the difference is a set.
        for ids in [&mut have, &mut need] {
            ids.sort();
            ids.dedup();
        }
        (have, need, rounds)
    }

    #[test]
    fn finds_the_difference() {
        let mut sessions = NegSessions::new(4, MAX_ITEMS);
        let now = Instant::now();
        let (have, need, _) = sync(&mut sessions, "a", &keys(0..150), &keys(100..200), now);
        assert_eq!(have, ids(150..200));
        assert_eq!(need, ids(0..100));
        assert_eq!(sessions.len(), 1, "the session stays open until NEG-CLOSE");
        sessions.close(&sub("a"));
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_large_difference_takes_several_bounded_rounds() {
        let mut sessions = NegSessions::new(4, MAX_ITEMS);
        let now = Instant::now();
        let (have, need, rounds) = sync(
            &mut sessions,
            "a",
            &keys(0..6_000),
            &keys(3_000..9_000),
            now,
        );
        assert_eq!(have, ids(6_000..9_000));
        assert_eq!(need, ids(0..3_000));
        assert!(rounds > 2, "{rounds} rounds");
    }

    #[test]
    fn a_bad_round_closes_the_session() {
        let mut sessions = NegSessions::new(4, MAX_ITEMS);
        let now = Instant::now();
        sync(&mut sessions, "a", &keys(0..10), &keys(0..5), now);
        let e = sessions
            .reconcile(&sub("a"), &[0x61, 0x01, 0x40], now)
            .unwrap_err();
        assert!(matches!(e, NegError::Protocol(_)), "{e}");
        assert!(matches!(
            sessions.reconcile(&sub("a"), &[0x61], now),
            Err(NegError::UnknownSession)
        ));
        assert!(matches!(
            sessions.reconcile(&sub("b"), &[0x61], now),
            Err(NegError::UnknownSession)
        ));
    }

    #[test]
    fn caps_sessions_and_items_and_drops_idle_ones() {
        let mut sessions = NegSessions::new(2, 25);
        let start = Instant::now();
        sync(&mut sessions, "a", &keys(0..10), &[], start);
        sync(&mut sessions, "b", &keys(0..10), &[], start);
        assert!(matches!(
            sessions.prepare_open(&sub("c"), start),
            Err(NegError::TooManySessions(2))
        ));
        // Reopening an id replaces its session, freeing its items first.
        assert_eq!(sessions.prepare_open(&sub("b"), start).unwrap(), 15);
        assert_eq!(sessions.len(), 1);

        let later = start + IDLE_TIMEOUT + Duration::from_secs(1);
        assert!(matches!(
            sessions.reconcile(&sub("a"), &[0x61], later),
            Err(NegError::Idle)
        ));
        assert_eq!(sessions.prepare_open(&sub("c"), later).unwrap(), 25);
    }
}

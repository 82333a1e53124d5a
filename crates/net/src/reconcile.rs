//! Set reconciliation between two nodes with negentropy (the algorithm of NIP-77): both
//! sides take the (created_at, id) of their events matching one filter, and a few rounds
//! of range fingerprints tell the initiator which ids only it has and which only the
//! other side has, at a cost that grows with the difference, not with the sets. Then only
//! the missing events travel ([`pull`], [`push`]).
//!
//! The answering side keeps no state between rounds: every `Reconcile` request carries
//! the filter, and the answer is computed from the store's keys for it (a negentropy
//! answer depends only on the message and the set). A set that changes between rounds at
//! worst reports an id one side already has, which a fetch or push then finds a
//! duplicate.

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use starling_core::Ingest;
use starling_proto::{Event, EventId, Filter};
use starling_store::{negentropy_storage, EventKey, EventStore};

use crate::handle::Network;
use crate::homeset::Member;
use crate::policy::ingest_answer;
use crate::wire::{Request, RequestBody, ResponseBody};
use crate::NetError;

/// Largest negentropy message either side builds (the protocol splits larger ones into
/// more rounds).
pub const FRAME_LIMIT: u64 = 64 * 1024;
/// Most events one side compares for one filter.
pub const MAX_KEYS: usize = 100_000;
/// Rounds one reconciliation may take at most (each round at least halves the ranges
/// left, so real runs take a handful).
const MAX_ROUNDS: usize = 64;
/// Ids asked in one fetch, events sent in one push.
const CHUNK: usize = 200;

/// What a reconciliation found, from the initiator's side.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diff {
    /// Ids the initiator holds and the other side lacks.
    pub have: Vec<EventId>,
    /// Ids the other side holds and the initiator lacks.
    pub need: Vec<EventId>,
    /// Negentropy bytes sent plus received.
    pub bytes: u64,
    pub rounds: usize,
}

fn storage(keys: &[EventKey]) -> Result<NegentropyStorageVector, String> {
    negentropy_storage(keys).map_err(|e| e.to_string())
}

/// Why the answering side could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The asking peer sent a message that is not negentropy: its fault.
    #[error("bad negentropy message: {0}")]
    BadMessage(String),
    /// This node could not read its own set.
    #[error("cannot answer: {0}")]
    Local(String),
}

/// The answering side: one negentropy answer to `message` over the store's events
/// matching `filter`.
pub async fn answer(
    store: &dyn EventStore,
    filter: Filter,
    message: &[u8],
) -> Result<Vec<u8>, AnswerError> {
    let keys = store
        .keys(vec![filter], MAX_KEYS)
        .await
        .map_err(|e| AnswerError::Local(e.to_string()))?;
    let storage = storage(&keys).map_err(AnswerError::Local)?;
    let mut neg =
        Negentropy::owned(storage, FRAME_LIMIT).map_err(|e| AnswerError::Local(e.to_string()))?;
    neg.reconcile(message)
        .map_err(|e| AnswerError::BadMessage(e.to_string()))
}

/// The initiating side: reconciles the store's events matching `filter` with `member`'s.
pub async fn reconcile(
    net: &Network,
    member: &Member,
    store: &dyn EventStore,
    filter: &Filter,
) -> Result<Diff, NetError> {
    let keys = store
        .keys(vec![filter.clone()], MAX_KEYS)
        .await
        .map_err(|e| NetError::Store(e.to_string()))?;
    let storage = storage(&keys).map_err(NetError::Request)?;
    let mut neg =
        Negentropy::owned(storage, FRAME_LIMIT).map_err(|e| NetError::Request(e.to_string()))?;
    let mut message = neg
        .initiate()
        .map_err(|e| NetError::Request(e.to_string()))?;
    let filter_json = filter.as_json();
    let mut diff = Diff::default();
    let (mut have, mut need) = (Vec::new(), Vec::new());
    loop {
        if diff.rounds == MAX_ROUNDS {
            return Err(NetError::Request(format!(
                "reconciliation did not finish in {MAX_ROUNDS} rounds"
            )));
        }
        diff.rounds += 1;
        diff.bytes += message.len() as u64;
        let request = Request::new(RequestBody::Reconcile {
            filter: filter_json.clone(),
            message: message.into(),
        });
        let delivered = net
            .request(member.peer, member.addrs.clone(), request)
            .await?;
        let answer = match delivered.response.body {
            ResponseBody::Reconciled { message } => message.into_vec(),
            ResponseBody::Refused { reason } => return Err(NetError::Refused(reason)),
            _ => return Err(NetError::Protocol),
        };
        diff.bytes += answer.len() as u64;
        let next = neg
            .reconcile_with_ids(&answer, &mut have, &mut need)
            .map_err(|e| NetError::Request(format!("bad negentropy answer: {e}")))?;
        match next {
            Some(m) => message = m,
            None => break,
        }
    }
    let to_ids = |ids: Vec<Id>| -> Vec<EventId> {
        ids.into_iter()
            .map(|id| EventId::from_byte_array(*id))
            .collect()
    };
    diff.have = to_ids(have);
    diff.need = to_ids(need);
    Ok(diff)
}

/// Fetches the events `ids` from `member` and ingests those `check` accepts; returns how
/// many were newly stored. `fetched` hears how many events each answer carried. Stops at
/// the first chunk the member does not answer.
pub async fn pull(
    net: &Network,
    member: &Member,
    ingest: &Ingest,
    ids: &[EventId],
    check: impl Fn(&Event) -> Result<(), String>,
    fetched: impl Fn(usize),
) -> Result<usize, NetError> {
    let mut stored = 0;
    for chunk in ids.chunks(CHUNK) {
        let filter = Filter::new().ids(chunk.iter().copied()).limit(chunk.len());
        let request = Request::new(RequestBody::Fetch {
            filters: vec![filter.as_json()],
            limit: chunk.len() as u32,
        });
        let delivered = net
            .request(member.peer, member.addrs.clone(), request)
            .await?;
        match delivered.response.body {
            ResponseBody::Events { events, .. } => {
                fetched(events.len());
                stored += ingest_answer(ingest, &events, &check).await;
            }
            ResponseBody::Refused { reason } => return Err(NetError::Refused(reason)),
            _ => return Err(NetError::Protocol),
        }
    }
    Ok(stored)
}

/// Pushes the stored events `ids` to `member`; returns how many it accepted.
pub async fn push(
    net: &Network,
    member: &Member,
    store: &dyn EventStore,
    ids: &[EventId],
) -> Result<usize, NetError> {
    let mut taken = 0;
    for chunk in ids.chunks(CHUNK) {
        let filter = Filter::new().ids(chunk.iter().copied()).limit(chunk.len());
        let events = store
            .query_json(vec![filter])
            .await
            .map_err(|e| NetError::Store(e.to_string()))?;
        if events.is_empty() {
            continue;
        }
        let request = Request::new(RequestBody::Push { events });
        let delivered = net
            .request(member.peer, member.addrs.clone(), request)
            .await?;
        match delivered.response.body {
            ResponseBody::Ack { results } => {
                taken += results.iter().filter(|r| r.is_none()).count()
            }
            ResponseBody::Refused { reason } => return Err(NetError::Refused(reason)),
            _ => return Err(NetError::Protocol),
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(range: std::ops::Range<u8>) -> Vec<EventKey> {
        range
            .map(|i| EventKey {
                created_at: 1_000 + u64::from(i) / 3,
                id: [i; 32],
            })
            .collect()
    }

    /// The two sides of the protocol, run in memory, find exactly the difference.
    #[test]
    fn finds_the_difference_both_ways() {
        let ours = keys(0..200);
        let theirs: Vec<EventKey> = keys(20..230)
            .into_iter()
            .filter(|k| k.id[0] != 100)
            .collect();
        let mut client = Negentropy::owned(storage(&ours).unwrap(), FRAME_LIMIT).unwrap();
        let mut server = Negentropy::owned(storage(&theirs).unwrap(), FRAME_LIMIT).unwrap();
        let mut message = client.initiate().unwrap();
        let (mut have, mut need) = (Vec::new(), Vec::new());
        for _ in 0..MAX_ROUNDS {
            let answer = server.reconcile(&message).unwrap();
            match client
                .reconcile_with_ids(&answer, &mut have, &mut need)
                .unwrap()
            {
                Some(m) => message = m,
                None => break,
            }
        }
        let mut have: Vec<u8> = have.iter().map(|id| id[0]).collect();
        let mut need: Vec<u8> = need.iter().map(|id| id[0]).collect();
        have.sort_unstable();
        need.sort_unstable();
        let mut expected_have: Vec<u8> = (0..20).collect();
        expected_have.push(100);
        assert_eq!(have, expected_have);
        assert_eq!(need, (200..230).collect::<Vec<u8>>());
    }
}

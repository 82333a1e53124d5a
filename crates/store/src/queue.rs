//! The write queue both backends share: callers send [`WriteCmd`]s through a
//! [`WriteQueue`] to the backend's one writer, which applies a batch of them in one
//! transaction and hands each caller its outcome with [`answer_all`]. The running totals
//! the writer keeps for [`EventStore::stats`](crate::EventStore::stats) are [`Counters`].

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use starling_proto::RenderedEvent;
use tokio::sync::{mpsc, oneshot};

use crate::{SaveOutcome, StoreError};

/// Events per write request in `save_many`.
const IMPORT_CHUNK: usize = 1000;

pub type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to the writer.
pub enum WriteCmd {
    Save(Vec<Arc<RenderedEvent>>, Reply<Vec<SaveOutcome>>),
    /// Remove events whose NIP-40 expiration is before this time (Unix seconds).
    RemoveExpired(i64, Reply<u64>),
    /// Finish queued work and stop (the SQLite writer checkpoints its WAL first).
    Shutdown(oneshot::Sender<()>),
}

/// Running totals, written by the writer and read by anyone.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
}

/// A batch's outcomes, in the order of its requests of each kind.
#[derive(Default)]
pub struct Outcomes {
    pub saves: VecDeque<Result<Vec<SaveOutcome>, StoreError>>,
    pub removals: VecDeque<Result<u64, StoreError>>,
}

/// Answers every request of `batch`: with its outcome, or with `failure` when the batch
/// was rolled back. Returns the shutdown reply if the batch asked to stop.
pub fn answer_all(
    batch: Vec<WriteCmd>,
    mut outcomes: Outcomes,
    failure: Option<&StoreError>,
) -> Option<oneshot::Sender<()>> {
    let mut shutdown = None;
    for cmd in batch {
        match cmd {
            WriteCmd::Save(events, reply) => {
                // Let go of the events first: the caller then owns them alone again.
                drop(events);
                answer(reply, failure, &mut outcomes.saves)
            }
            WriteCmd::RemoveExpired(_, reply) => answer(reply, failure, &mut outcomes.removals),
            WriteCmd::Shutdown(done) => shutdown = Some(done),
        }
    }
    shutdown
}

fn answer<T>(
    reply: Reply<T>,
    failure: Option<&StoreError>,
    outcomes: &mut VecDeque<Result<T, StoreError>>,
) {
    let sent = match (failure, outcomes.pop_front()) {
        (None, Some(outcome)) => outcome,
        (Some(e), _) => Err(e.for_waiter()),
        (None, None) => Err(StoreError::Corrupt("the writer lost an outcome".into())),
    };
    let _ = reply.send(sent);
}

/// The callers' end of the queue.
pub struct WriteQueue(mpsc::Sender<WriteCmd>);

impl WriteQueue {
    pub fn new(sender: mpsc::Sender<WriteCmd>) -> Self {
        Self(sender)
    }

    /// Sends one request and waits for its answer.
    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> WriteCmd) -> Result<T, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.0
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn save(&self, event: Arc<RenderedEvent>) -> Result<SaveOutcome, StoreError> {
        let outcomes = self
            .write(|reply| WriteCmd::Save(vec![event], reply))
            .await?;
        outcomes.into_iter().next().ok_or(StoreError::Closed)
    }

    /// Saves `events` in requests of at most [`IMPORT_CHUNK`].
    pub async fn save_many(
        &self,
        mut events: Vec<Arc<RenderedEvent>>,
    ) -> Result<Vec<SaveOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(events.len());
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(IMPORT_CHUNK));
            let chunk = std::mem::replace(&mut events, rest);
            outcomes.extend(self.write(|reply| WriteCmd::Save(chunk, reply)).await?);
        }
        Ok(outcomes)
    }

    pub async fn remove_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.write(|reply| WriteCmd::RemoveExpired(now, reply))
            .await
    }

    /// Finishes queued writes and stops the writer. Later writes fail with
    /// [`StoreError::Closed`].
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.0.send(WriteCmd::Shutdown(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

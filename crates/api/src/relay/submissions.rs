//! A session's EVENTs on their way through the ingest path. EVENTs a client sent together
//! are taken together: the session collects the ones already received into a batch (up to
//! [`BATCH`]) and runs each batch as one task, which validates them and stores the valid
//! ones in one write request. A pipelining client so costs one task, one store request and
//! one wake-up per batch instead of per event, while several batches still verify
//! signatures on both cores. A client that sends one EVENT at a time gets a batch of one.
//!
//! Answers come back in the order the EVENTs came in, refusals included.

use std::sync::Arc;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use starling_core::{Ack, Ingest, IngestError, Origin, Remote};
use tokio::task::{JoinError, JoinHandle};

use super::auth;

/// EVENTs run through ingest as one task at most.
pub const BATCH: usize = 32;

/// EVENTs of one connection being validated and stored at once.
const MAX_IN_FLIGHT: usize = 512;

/// Each EVENT's text and its result, in the order received.
pub type Answers = Vec<(String, Result<Ack, IngestError>)>;

/// A finished batch, or the panic of its task (its EVENTs then go unanswered).
pub type Done = Result<Answers, JoinError>;

/// Where a batch goes: fixed when its first EVENT is taken. It can only change with an
/// AUTH message, and every message other than an EVENT starts the batch in progress
/// first.
#[derive(Clone)]
pub struct Route {
    pub ingest: Arc<Ingest>,
    pub origin: Origin,
    /// Set for the owner's authenticated sessions: their gift wraps go out through it.
    pub remote: Option<Arc<dyn Remote>>,
}

/// The EVENTs of one session that are not answered yet.
#[derive(Default)]
pub struct Submissions {
    running: FuturesOrdered<JoinHandle<Answers>>,
    /// EVENTs taken but not started yet, with where they go.
    batch: Vec<String>,
    route: Option<Route>,
    /// EVENTs in `running` and `batch`.
    events: usize,
    /// Bytes of those EVENTs.
    bytes: usize,
}

impl Submissions {
    /// Whether the session may read another message (few enough EVENTs are in flight).
    pub fn may_take(&self, max_bytes: usize) -> bool {
        self.events < MAX_IN_FLIGHT && self.bytes < max_bytes
    }

    /// Whether the batch in progress is full.
    pub fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH
    }

    /// Adds an EVENT to the batch in progress (`route` names where a new batch goes), and
    /// starts the batch once it is full.
    pub fn take(&mut self, raw: String, route: impl FnOnce() -> Route) {
        if self.route.is_none() {
            self.route = Some(route());
        }
        self.count_in(&raw);
        self.batch.push(raw);
        if self.batch_full() {
            self.start();
        }
    }

    /// Answers an EVENT with `refused` without looking at it, after everything before it.
    pub fn refuse(&mut self, raw: String, refused: IngestError) {
        self.start();
        self.count_in(&raw);
        let answers = vec![(raw, Err(refused))];
        self.running
            .push_back(tokio::spawn(std::future::ready(answers)));
    }

    /// Starts the batch in progress as a task.
    pub fn start(&mut self) {
        let Some(route) = self.route.take() else {
            return;
        };
        let texts = std::mem::take(&mut self.batch);
        self.running.push_back(tokio::spawn(run(texts, route)));
    }

    /// The next finished batch, in order; never when nothing runs.
    pub async fn next(&mut self) -> Option<Done> {
        let answers = self.running.next().await?;
        Some(self.count_out(answers))
    }

    /// The next batch if it has finished already.
    pub fn next_ready(&mut self) -> Option<Done> {
        match self.running.next().now_or_never() {
            Some(Some(answers)) => Some(self.count_out(answers)),
            _ => None,
        }
    }

    /// Whether a batch is running (so [`Self::next`] will yield).
    pub fn running(&self) -> bool {
        !self.running.is_empty()
    }

    fn count_in(&mut self, raw: &str) {
        self.events += 1;
        self.bytes += raw.len();
    }

    fn count_out(&mut self, done: Done) -> Done {
        // When the task panicked its EVENTs stay counted, which only slows this connection.
        if let Ok(answers) = &done {
            self.events -= answers.len();
            self.bytes -= answers.iter().map(|(raw, _)| raw.len()).sum::<usize>();
        }
        done
    }
}

/// Validates and stores one batch; sends the owner's gift wraps on.
async fn run(texts: Vec<String>, route: Route) -> Answers {
    let results = route.ingest.submit_json_batch(&texts, route.origin).await;
    let mut answers = Vec::with_capacity(texts.len());
    for (raw, mut result) in texts.into_iter().zip(results) {
        if let (Ok(_), Origin::OwnerSession, Some(remote)) = (&result, route.origin, &route.remote)
        {
            if let Err(e) = auth::deliver_wrap(remote.as_ref(), &raw).await {
                result = Err(IngestError::Delivery(e));
            }
        }
        answers.push((raw, result));
    }
    answers
}

//! The ingest path: validate, apply the write policy for the event's origin, store, and
//! announce it on the bus. Every source of events goes through [`Ingest::submit_json`] or
//! [`Ingest::submit`]; the answer ([`Ack`] or [`IngestError`]) is what the client edge turns
//! into an `OK` message or an HTTP status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use starling_proto::{
    validate_parsed_known, validate_rendered_known, Event, EventId, Kind, KnownKey, Limits,
    PublicKey, RenderedEvent, Timestamp, ValidationError,
};
use starling_store::{EventStore, SaveOutcome, StoreError};
use tracing::debug;

use crate::bus::EventBus;

/// Where an event came from; the write policy depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// One of the owner's own clients (relay WebSocket, REST, CLI, web client).
    LocalClient,
    /// A client that proved it holds the owner's key (NIP-42 on the relay): besides the
    /// owner's events it may publish gift wraps (NIP-59, kind 1059), which are signed by
    /// one-time keys.
    OwnerSession,
    /// The operator's `starling import`: any author, checked like everything else.
    Import,
    /// A peer. The network layer applies its own write policy (what peers may push)
    /// through [`Ingest::submit_checked`] before the event is stored.
    Network,
}

/// A successful submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The event's id.
    pub id: EventId,
    /// Whether the node already had it (else it is newly stored, or relayed live for an
    /// ephemeral event).
    pub duplicate: bool,
}

/// Why a submission was refused. The `Display` form starts with the NIP-01 machine prefix.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid: {0}")]
    Invalid(#[from] ValidationError),
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("auth-required: {0}")]
    AuthRequired(String),
    /// Refused by a rate limit before it was looked at.
    #[error("rate-limited: {0}")]
    RateLimited(String),
    #[error("error: stored, but not queued for delivery: {0}")]
    Delivery(String),
    #[error("duplicate: a newer version of this replaceable event is stored")]
    Superseded,
    #[error("blocked: this event was deleted by its author")]
    Deleted,
    /// The node's disk is full: the event was not stored (and is not acknowledged); the
    /// client may send it again once the operator has freed space.
    #[error("error: storage full: the node's disk has no space left, the event was not stored; try again later")]
    StorageFull(#[source] StoreError),
    #[error("error: could not store the event: {0}")]
    Store(#[source] StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        if e.is_full() {
            Self::StorageFull(e)
        } else {
            Self::Store(e)
        }
    }
}

/// Submissions counted since the node started, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Newly stored (or relayed live, for ephemeral events).
    pub accepted: u64,
    /// Already held.
    pub duplicate: u64,
    /// Refused: invalid, blocked, superseded, deleted or not stored.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    rejected: AtomicU64,
}

impl Counters {
    fn record(&self, result: &Result<Ack, IngestError>) {
        let counter = match result {
            Ok(ack) if ack.duplicate => &self.duplicate,
            Ok(_) => &self.accepted,
            Err(_) => &self.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The ingest path of one node.
pub struct Ingest {
    store: Arc<dyn EventStore>,
    bus: EventBus,
    owner: PublicKey,
    /// The owner's key, parsed once for checking the signatures of the owner's events.
    owner_key: Option<KnownKey>,
    limits: Limits,
    counters: Counters,
}

impl Ingest {
    pub fn new(
        store: Arc<dyn EventStore>,
        bus: EventBus,
        owner: PublicKey,
        limits: Limits,
    ) -> Self {
        Self {
            store,
            bus,
            owner,
            owner_key: KnownKey::new(owner),
            limits,
            counters: Counters::default(),
        }
    }

    /// Submissions counted since the node started.
    pub fn counts(&self) -> IngestCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestCounts {
            accepted: get(&self.counters.accepted),
            duplicate: get(&self.counters.duplicate),
            rejected: get(&self.counters.rejected),
        }
    }

    /// Validates and submits an event given as JSON text.
    pub async fn submit_json(&self, json: &str, origin: Origin) -> Result<Ack, IngestError> {
        let result = match validate_rendered_known(
            json,
            &self.limits,
            Timestamp::now(),
            self.owner_key.as_ref(),
        ) {
            Ok(event) => self.accept(event, origin).await,
            Err(e) => Err(e.into()),
        };
        self.counters.record(&result);
        result
    }

    /// Validates an event given as JSON, lets `policy` refuse it (the reason becomes a
    /// `blocked:` error), then submits it.
    pub async fn submit_checked(
        &self,
        json: &str,
        origin: Origin,
        policy: impl FnOnce(&Event) -> Result<(), String>,
    ) -> Result<Ack, IngestError> {
        let result = async {
            let event = validate_rendered_known(
                json,
                &self.limits,
                Timestamp::now(),
                self.owner_key.as_ref(),
            )?;
            policy(event.event()).map_err(IngestError::Blocked)?;
            self.accept(event, origin).await
        }
        .await;
        self.counters.record(&result);
        result
    }

    /// Validates and submits a parsed event (its JSON length is recomputed for the limit).
    pub async fn submit(&self, event: Event, origin: Origin) -> Result<Ack, IngestError> {
        let result = match validate_parsed_known(
            event,
            &self.limits,
            Timestamp::now(),
            self.owner_key.as_ref(),
        ) {
            Ok(event) => self.accept(event, origin).await,
            Err(e) => Err(e.into()),
        };
        self.counters.record(&result);
        result
    }

    /// Validates and submits many events in few commits (imports). Returns one result per
    /// event, in order.
    pub async fn submit_many(
        &self,
        events: Vec<Event>,
        origin: Origin,
    ) -> Vec<Result<Ack, IngestError>> {
        let now = Timestamp::now();
        let checked = events
            .into_iter()
            .map(|event| {
                validate_parsed_known(event, &self.limits, now, self.owner_key.as_ref())
                    .map_err(IngestError::from)
            })
            .collect();
        self.store_checked(checked, origin).await
    }

    /// Validates events given as JSON texts (several EVENTs a client sent at once) and
    /// stores the valid ones in one write request. Returns one result per text, in order.
    pub async fn submit_json_batch(
        &self,
        texts: &[String],
        origin: Origin,
    ) -> Vec<Result<Ack, IngestError>> {
        let now = Timestamp::now();
        let checked = texts
            .iter()
            .map(|json| {
                validate_rendered_known(json, &self.limits, now, self.owner_key.as_ref())
                    .map_err(IngestError::from)
            })
            .collect();
        self.store_checked(checked, origin).await
    }

    /// Applies the write policy to each validated event and stores those it lets through
    /// together; returns one result per entry of `checked`, in order.
    async fn store_checked(
        &self,
        checked: Vec<Result<RenderedEvent, IngestError>>,
        origin: Origin,
    ) -> Vec<Result<Ack, IngestError>> {
        let mut results: Vec<Option<Result<Ack, IngestError>>> = Vec::with_capacity(checked.len());
        let mut valid = Vec::new();
        for checked in checked {
            match checked.and_then(|event| {
                self.check_policy(event.event(), origin)?;
                Ok(Arc::new(event))
            }) {
                Ok(event) => {
                    results.push(None);
                    valid.push(event);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut outcomes = match self.store.save_many(valid.clone()).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .zip(valid)
                .map(|(o, e)| self.announce(o, e))
                .collect::<Vec<_>>(),
            Err(e) => valid
                .iter()
                .map(|_| Err(IngestError::from(e.for_waiter())))
                .collect(),
        }
        .into_iter();
        let results: Vec<_> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| outcomes.next().expect("one outcome per valid event")))
            .collect();
        results.iter().for_each(|r| self.counters.record(r));
        results
    }

    fn check_policy(&self, event: &Event, origin: Origin) -> Result<(), IngestError> {
        match origin {
            Origin::LocalClient | Origin::OwnerSession if event.pubkey == self.owner => Ok(()),
            Origin::OwnerSession if event.kind == Kind::GiftWrap => Ok(()),
            Origin::LocalClient if event.kind == Kind::GiftWrap => Err(IngestError::AuthRequired(
                "gift wraps are taken from the owner's authenticated clients (NIP-42)".into(),
            )),
            Origin::LocalClient | Origin::OwnerSession => Err(IngestError::Blocked(
                "only events signed by this node's owner may be published here".into(),
            )),
            Origin::Import | Origin::Network => Ok(()),
        }
    }

    async fn accept(&self, event: RenderedEvent, origin: Origin) -> Result<Ack, IngestError> {
        self.check_policy(event.event(), origin)?;
        let event = Arc::new(event);
        let outcome = self.store.save(event.clone()).await?;
        self.announce(outcome, event)
    }

    /// Publishes a stored (or ephemeral) event. The store has let go of its share of
    /// `event` by the time it answers, so this normally takes it without a copy.
    fn announce(
        &self,
        outcome: SaveOutcome,
        event: Arc<RenderedEvent>,
    ) -> Result<Ack, IngestError> {
        let id = event.event().id;
        debug!(%id, ?outcome, "event submitted");
        match outcome {
            SaveOutcome::Stored | SaveOutcome::Ephemeral => {
                self.bus.publish(Arc::unwrap_or_clone(event));
                Ok(Ack {
                    id,
                    duplicate: false,
                })
            }
            SaveOutcome::Duplicate => Ok(Ack {
                id,
                duplicate: true,
            }),
            SaveOutcome::Superseded => Err(IngestError::Superseded),
            SaveOutcome::Deleted => Err(IngestError::Deleted),
        }
    }
}

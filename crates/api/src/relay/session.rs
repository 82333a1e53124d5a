//! One client's relay session: parses its messages, runs EVENTs through the ingest path
//! (many at once, so a pipelining client gets batched commits and both cores verify
//! signatures), answers REQ with stored events then EOSE and keeps the subscription live,
//! and answers COUNT and CLOSE, and NIP-77's NEG-OPEN, NEG-MSG and NEG-CLOSE (the
//! reconciliation itself is [`super::negentropy`]'s). Generic over text streams so tests can
//! drive it directly.
//!
//! Replies to EVENTs go out in the order the EVENTs came in. Before a REQ, COUNT or NEG-OPEN
//! is answered, every earlier EVENT has been stored, so a client sees its own writes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use starling_core::{Ack, IngestError, LiveEvent, Origin};
use starling_proto::message::parse_client_message;
use starling_proto::{
    matches_any, raw_event_id, raw_event_pubkey, stored_pubkey, ClientMessage, Filter,
    MessageError, RelayMessage, SubscriptionId,
};
use starling_store::negentropy_storage;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;
use tracing::{debug, info_span, Instrument};

use super::auth::{self, Auth, AUTH_REQUIRED};
use super::neg_message::{self, NegParseError, NegRequest};
use super::negentropy::{NegError, NegSessions, MAX_ITEMS};
use super::remote::WriteGate;
use super::submissions::{Done, Route, Submissions, BATCH};
use crate::limiter::{ConnSlot, RATE_LIMITED};
use crate::ApiState;

/// An open subscription: its filters, and the last bus sequence number its stored-events
/// query already covered.
struct Subscription {
    filters: Vec<Filter>,
    covered: u64,
}

struct Session<O> {
    state: Arc<ApiState>,
    out: O,
    subs: HashMap<SubscriptionId, Subscription>,
    /// EVENTs not answered yet.
    submissions: Submissions,
    /// The live event feed, held only while subscriptions are open: a connection that
    /// only publishes costs the bus nothing.
    live: Option<broadcast::Receiver<Arc<LiveEvent>>>,
    /// Open NIP-77 sessions, as many as REQ subscriptions may be.
    neg: NegSessions,
    /// NIP-42: who the client proved to be.
    auth: Auth,
    /// What the client must do before its EVENTs are taken (see `remote`).
    gate: WriteGate,
    /// This connection's place, rate limits and caps.
    slot: ConnSlot,
}

/// The next live event, or never when there is no feed.
async fn next_live(
    live: &mut Option<broadcast::Receiver<Arc<LiveEvent>>>,
) -> Result<Arc<LiveEvent>, RecvError> {
    match live {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a session of one of the owner's own clients until the client goes away, the
/// output fails or the node shuts down.
pub async fn run_session<I, O>(incoming: I, out: O, state: Arc<ApiState>, slot: ConnSlot)
where
    I: Stream<Item = String> + Unpin,
    O: Sink<String> + Unpin,
{
    run_gated_session(incoming, out, state, slot, WriteGate::Open).await
}

/// As [`run_session`], for a client whose EVENTs must pass `gate`.
pub async fn run_gated_session<I, O>(
    mut incoming: I,
    out: O,
    state: Arc<ApiState>,
    slot: ConnSlot,
    gate: WriteGate,
) where
    I: Stream<Item = String> + Unpin,
    O: Sink<String> + Unpin,
{
    let conn = state.connections.fetch_add(1, Ordering::Relaxed) + 1;
    let span = info_span!("ws", conn, ip = ?slot.ip());
    let max_pending_bytes = slot.max_pending_bytes();
    let shutdown = state.shutdown.clone();
    let mut session = Session {
        state: state.clone(),
        out,
        subs: HashMap::new(),
        submissions: Submissions::default(),
        live: None,
        neg: NegSessions::new(state.limits.max_subscriptions, MAX_ITEMS),
        auth: Auth::default(),
        gate,
        slot,
    };
    async {
        debug!("session opened");
        loop {
            let ok = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(done) = session.submissions.next(), if session.submissions.running() => session.finish_ready(done).await,
                msg = incoming.next(), if session.submissions.may_take(max_pending_bytes) => match msg {
                    Some(text) => match session.handle_burst(&text, &mut incoming, max_pending_bytes).await {
                        Burst::Handled(ok) => ok,
                        Burst::Ended => break,
                    },
                    None => break,
                },
                event = next_live(&mut session.live) => match event {
                    Ok(event) => session.deliver(&event).await,
                    Err(RecvError::Lagged(n)) => session.send(RelayMessage::Notice(&format!("error: fell behind, {n} live events skipped"))).await,
                    Err(RecvError::Closed) => break,
                },
            };
            if !ok {
                break;
            }
        }
        debug!("session closed");
    }
    .instrument(span)
    .await;
    state
        .subscriptions
        .fetch_sub(session.subs.len(), Ordering::Relaxed);
    state.connections.fetch_sub(1, Ordering::Relaxed);
}

/// What became of a burst of messages.
enum Burst {
    /// Handled; false when the connection should end.
    Handled(bool),
    /// The client went away after sending them.
    Ended,
}

impl<O: Sink<String> + Unpin> Session<O> {
    /// Handles `text` and up to [`BATCH`] more messages the client already sent, so that
    /// EVENTs sent together go through ingest as one batch, then starts that batch.
    async fn handle_burst<I>(&mut self, text: &str, incoming: &mut I, max_bytes: usize) -> Burst
    where
        I: Stream<Item = String> + Unpin,
    {
        let mut ok = self.handle(text).await;
        let mut taken = 0;
        while ok && taken < BATCH && self.submissions.may_take(max_bytes) {
            match incoming.next().now_or_never() {
                Some(Some(text)) => ok = self.handle(&text).await,
                Some(None) => {
                    // Stored even so: a client may send its EVENTs and leave.
                    self.submissions.start();
                    return Burst::Ended;
                }
                None => break,
            }
            taken += 1;
        }
        self.submissions.start();
        Burst::Handled(ok)
    }

    /// Sends and flushes (with anything queued before it).
    async fn send(&mut self, msg: RelayMessage<'_>) -> bool {
        self.out.send(msg.to_json()).await.is_ok()
    }

    /// Queues without flushing.
    async fn feed(&mut self, msg: RelayMessage<'_>) -> bool {
        self.out.feed(msg.to_json()).await.is_ok()
    }

    /// Handles one client message; false when the connection should end.
    async fn handle(&mut self, text: &str) -> bool {
        let message = parse_client_message(text, &self.state.limits);
        if !matches!(message, Ok(ClientMessage::Event(_))) {
            // Whatever this is, it comes after the EVENTs taken so far (and an AUTH
            // changes where later EVENTs go).
            self.submissions.start();
        }
        match message {
            Ok(ClientMessage::Event(raw)) => {
                self.submit(raw);
                true
            }
            Ok(ClientMessage::Req { sub_id, .. } | ClientMessage::Count { sub_id, .. })
                if self.slot.req().is_err() =>
            {
                self.send(RelayMessage::Closed(&sub_id, RATE_LIMITED)).await
            }
            Ok(ClientMessage::Req { sub_id, filters }) => self.req(sub_id, filters).await,
            Ok(ClientMessage::Count { sub_id, filters }) => self.count(sub_id, filters).await,
            Ok(ClientMessage::Auth(raw)) => self.authenticate(raw).await,
            Ok(ClientMessage::Close(sub_id)) => {
                if self.subs.remove(&sub_id).is_some() {
                    self.state.subscriptions.fetch_sub(1, Ordering::Relaxed);
                }
                if self.subs.is_empty() {
                    self.live = None;
                }
                true
            }
            Err(MessageError::Unsupported(kind)) if kind.starts_with("NEG-") => {
                self.negentropy(text).await
            }
            Err(MessageError::BadSubscription { sub_id, reason }) => {
                self.send(RelayMessage::Closed(&sub_id, &reason)).await
            }
            Err(e) => match self.slot.malformed() {
                Ok(()) => {
                    self.send(RelayMessage::Notice(&format!("error: {e}")))
                        .await
                }
                Err(reason) => self.send(RelayMessage::Notice(reason)).await,
            },
        }
    }

    fn submit(&mut self, raw: &str) {
        let raw = raw.to_owned();
        let author = if self.slot.is_limited() {
            raw_event_pubkey(&raw)
        } else {
            None
        };
        if let Err(reason) = self.slot.event(author.as_ref()) {
            return self
                .submissions
                .refuse(raw, IngestError::RateLimited(reason.into()));
        }
        let owner = self.auth.is(&self.state.owner);
        if let Err(refused) = self.gate.admit(owner) {
            return self.submissions.refuse(raw, refused);
        }
        let state = &self.state;
        self.submissions.take(raw, || Route {
            ingest: state.ingest.clone(),
            origin: if owner {
                Origin::OwnerSession
            } else {
                Origin::LocalClient
            },
            remote: state.remote.clone(),
        });
    }

    /// The owner, when the client authenticated as the owner (what gift wraps need).
    fn owner_reader(&self) -> Option<starling_proto::PublicKey> {
        self.auth.is(&self.state.owner).then_some(self.state.owner)
    }

    /// Sends this connection's NIP-42 challenge, the first time it is needed.
    async fn challenge(&mut self) -> bool {
        let (challenge, new) = self.auth.challenge();
        !new || self.feed(RelayMessage::Auth(&challenge)).await
    }

    /// Closes `sub_id` (a REQ or COUNT naming gift wraps) until the client authenticates
    /// as the owner, sending the challenge first if it has not been sent.
    async fn auth_required(&mut self, sub_id: &SubscriptionId) -> bool {
        self.challenge().await && self.send(RelayMessage::Closed(sub_id, AUTH_REQUIRED)).await
    }

    /// Answers an AUTH message with OK.
    async fn authenticate(&mut self, raw: &str) -> bool {
        let id = raw_event_id(raw);
        let (accepted, message) = match self.auth.verify(raw, &self.state.limits) {
            Ok(pubkey) if pubkey == self.state.owner => (true, String::new()),
            Ok(_) => (true, self.gate.not_the_owner().into()),
            Err(e) => (false, e),
        };
        self.send(RelayMessage::Ok {
            id: &id,
            accepted,
            message: &message,
        })
        .await
    }

    /// Queues the OKs of a finished batch.
    async fn finish(&mut self, done: Done) -> bool {
        let Ok(answers) = done else {
            return self
                .feed(RelayMessage::Notice(
                    "error: internal error while storing events",
                ))
                .await;
        };
        for (raw, result) in answers {
            if !self.answer(&raw, result).await {
                return false;
            }
        }
        true
    }

    /// Queues the OK for one EVENT.
    async fn answer(&mut self, raw: &str, result: Result<Ack, IngestError>) -> bool {
        match result {
            Ok(ack) => {
                let message = if ack.duplicate {
                    "duplicate: already have this event"
                } else {
                    ""
                };
                let id = ack.id.to_hex();
                self.feed(RelayMessage::Ok {
                    id: &id,
                    accepted: true,
                    message,
                })
                .await
            }
            Err(e) => {
                debug!(error = %e, "event refused");
                if !matches!(e, IngestError::RateLimited(_)) {
                    self.slot.refused();
                }
                if matches!(e, IngestError::AuthRequired(_)) && !self.challenge().await {
                    return false;
                }
                let id = raw_event_id(raw);
                let message = e.to_string();
                self.feed(RelayMessage::Ok {
                    id: &id,
                    accepted: false,
                    message: &message,
                })
                .await
            }
        }
    }

    /// Answers `done` and every other submission already finished, then flushes once:
    /// a pipelining client gets its OKs in few writes instead of one write each.
    async fn finish_ready(&mut self, done: Done) -> bool {
        let mut ok = self.finish(done).await;
        while ok {
            match self.submissions.next_ready() {
                Some(done) => ok = self.finish(done).await,
                None => break,
            }
        }
        ok && self.out.flush().await.is_ok()
    }

    /// Waits for every EVENT received so far to be answered.
    async fn drain(&mut self) -> bool {
        self.submissions.start();
        while let Some(done) = self.submissions.next().await {
            if !self.finish(done).await {
                return false;
            }
        }
        self.out.flush().await.is_ok()
    }

    async fn req(&mut self, sub_id: SubscriptionId, filters: Vec<Filter>) -> bool {
        if !self.drain().await {
            return false;
        }
        if !self.subs.contains_key(&sub_id)
            && self.subs.len() >= self.state.limits.max_subscriptions
        {
            let msg = format!(
                "error: too many subscriptions (the limit is {})",
                self.state.limits.max_subscriptions
            );
            return self.send(RelayMessage::Closed(&sub_id, &msg)).await;
        }
        let reader = self.owner_reader();
        if reader.is_none() && auth::asks_for_wraps(&filters) {
            return self.auth_required(&sub_id).await;
        }
        // Join the live feed before noting what the query covers, so nothing falls between.
        if self.live.is_none() {
            self.live = Some(self.state.bus.subscribe());
        }
        let (stored, covered) = match self.stored(&filters).await {
            Ok(answer) => answer,
            Err(e) => {
                return self
                    .send(RelayMessage::Closed(&sub_id, &format!("error: {e}")))
                    .await
            }
        };
        let screen = filters.iter().any(auth::may_match_wraps);
        for event_json in &stored {
            if screen && !auth::json_may_see(event_json, reader.as_ref()) {
                continue;
            }
            let msg = RelayMessage::Event {
                sub_id: &sub_id,
                event_json,
            }
            .to_json();
            if self.out.feed(msg).await.is_err() {
                return false;
            }
        }
        if !self.send(RelayMessage::Eose(&sub_id)).await {
            return false;
        }
        if self
            .subs
            .insert(sub_id, Subscription { filters, covered })
            .is_none()
        {
            self.state.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// The stored events `filters` match, and the last bus sequence number they cover;
    /// named authors the answer lacks and the node never saw are fetched, then the store is
    /// asked again (see [`ApiState::query_fetching`]).
    async fn stored(
        &self,
        filters: &[Filter],
    ) -> Result<(Vec<String>, u64), starling_store::StoreError> {
        let state = &self.state;
        let query = move || async move {
            let covered = state.bus.last_seq();
            Ok((state.store.query_json(filters.to_vec()).await?, covered))
        };
        let authors = |(stored, _): &(Vec<String>, u64)| {
            stored.iter().filter_map(|j| stored_pubkey(j)).collect()
        };
        state.query_fetching(filters, query, authors).await
    }

    async fn count(&mut self, sub_id: SubscriptionId, filters: Vec<Filter>) -> bool {
        if !self.drain().await {
            return false;
        }
        let reader = self.owner_reader();
        if reader.is_none() && auth::asks_for_wraps(&filters) {
            return self.auth_required(&sub_id).await;
        }
        match self.visible_count(filters, reader).await {
            Ok(n) => self.send(RelayMessage::Count(&sub_id, n)).await,
            Err(e) => {
                self.send(RelayMessage::Closed(&sub_id, &format!("error: {e}")))
                    .await
            }
        }
    }

    /// Handles one NIP-77 message; false when the connection should end.
    async fn negentropy(&mut self, text: &str) -> bool {
        let now = Instant::now();
        match neg_message::parse(text, &self.state.limits) {
            Ok(NegRequest::Open {
                sub_id,
                filter,
                initial,
            }) => {
                if let Err(reason) = self.slot.req() {
                    return self
                        .neg_reply(&sub_id, Err(NegError::RateLimited(reason)))
                        .await;
                }
                if !self.drain().await {
                    return false;
                }
                let reply = self.neg_open(&sub_id, filter, &initial, now).await;
                self.neg_reply(&sub_id, reply).await
            }
            Ok(NegRequest::Msg { sub_id, message }) => {
                let reply = self.neg.reconcile(&sub_id, &message, now);
                self.neg_reply(&sub_id, reply).await
            }
            Ok(NegRequest::Close(sub_id)) => {
                self.neg.close(&sub_id);
                true
            }
            Err(NegParseError::Session { sub_id, error }) => {
                self.neg_reply(&sub_id, Err(error)).await
            }
            Err(e @ NegParseError::Malformed(_)) => {
                self.send(RelayMessage::Notice(&format!("error: {e}")))
                    .await
            }
        }
    }

    /// Builds the set of stored events `filter` matches (as REQ would see them, at most
    /// the room the connection has left) and opens a session over it.
    async fn neg_open(
        &mut self,
        sub_id: &SubscriptionId,
        filter: Filter,
        initial: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, NegError> {
        let room = self.neg.prepare_open(sub_id, now)?;
        let filters = vec![filter];
        self.state.fetch_missing(&filters).await;
        let hidden = self.hidden_wraps(&filters[0]).await?;
        let mut keys = self
            .state
            .store
            .keys(filters, room.saturating_add(1))
            .await
            .map_err(NegError::Store)?;
        keys.retain(|k| !hidden.contains(&k.id));
        if keys.len() > room {
            return Err(NegError::TooManyRecords(room));
        }
        let items = keys.len();
        // Sorting half a million keys is CPU work the session's thread should not do.
        let storage = tokio::task::spawn_blocking(move || negentropy_storage(&keys))
            .await
            .map_err(|_| NegError::Internal)?
            .map_err(NegError::Set)?;
        self.neg.open(sub_id.clone(), storage, items, initial, now)
    }

    /// Ids of the gift wraps `filter` matches that the reader may not see (see `auth`).
    async fn hidden_wraps(
        &self,
        filter: &Filter,
    ) -> Result<std::collections::HashSet<[u8; 32]>, NegError> {
        let Some(wraps) = auth::wraps_of(filter) else {
            return Ok(Default::default());
        };
        let store = &self.state.store;
        let keys = |f: Filter| async move {
            store
                .keys(vec![f], MAX_ITEMS)
                .await
                .map_err(NegError::Store)
        };
        let mut hidden: std::collections::HashSet<[u8; 32]> =
            keys(wraps).await?.into_iter().map(|k| k.id).collect();
        if let Some(own) = self
            .owner_reader()
            .and_then(|o| auth::owner_wraps_of(filter, &o))
        {
            for k in keys(own).await? {
                hidden.remove(&k.id);
            }
        }
        Ok(hidden)
    }

    /// Answers a negentropy request: its next message, or NEG-ERR (which ends the session).
    async fn neg_reply(
        &mut self,
        sub_id: &SubscriptionId,
        reply: Result<Vec<u8>, NegError>,
    ) -> bool {
        let msg = match reply {
            Ok(message) => neg_message::msg_json(sub_id, &message),
            Err(e) => {
                debug!(error = %e, sub = %sub_id, "negentropy request refused");
                self.neg.close(sub_id);
                neg_message::err_json(sub_id, &e)
            }
        };
        self.out.send(msg).await.is_ok()
    }

    /// How many stored events match `filters` that the reader may see: gift wraps are
    /// counted only for the owner, and only those addressed to them.
    async fn visible_count(
        &self,
        filters: Vec<Filter>,
        reader: Option<starling_proto::PublicKey>,
    ) -> Result<u64, starling_store::StoreError> {
        let store = &self.state.store;
        let wraps: Vec<Filter> = filters.iter().filter_map(auth::wraps_of).collect();
        let all = store.count(filters.clone()).await?;
        if wraps.is_empty() {
            return Ok(all);
        }
        let hidden = store.count(wraps).await?;
        let seen = match reader {
            Some(owner) => {
                let own: Vec<Filter> = filters
                    .iter()
                    .filter_map(|f| auth::owner_wraps_of(f, &owner))
                    .collect();
                if own.is_empty() {
                    0
                } else {
                    store.count(own).await?
                }
            }
            None => 0,
        };
        Ok(all.saturating_sub(hidden) + seen)
    }

    /// Sends a newly accepted event to every subscription it matches.
    async fn deliver(&mut self, live: &LiveEvent) -> bool {
        if !auth::may_see(&live.event, self.owner_reader().as_ref()) {
            return true;
        }
        let matching: Vec<SubscriptionId> = self
            .subs
            .iter()
            .filter(|(_, sub)| live.seq > sub.covered && matches_any(&sub.filters, &live.event))
            .map(|(id, _)| id.clone())
            .collect();
        for sub_id in &matching {
            let msg = RelayMessage::Event {
                sub_id,
                event_json: &live.json,
            };
            if !self.send(msg).await {
                return false;
            }
        }
        true
    }
}

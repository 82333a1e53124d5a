//! The request service: answers what peers ask of this node. Pushes are checked against
//! the write policy (the owner's follows and inbox, and the authors and inboxes this node
//! keeps as a home-set member) and fed into the node's one ingest path; subscriptions to
//! authors it keeps are recorded for the pusher and answered with the events since the
//! asked time, subscriptions to others are redirected to their home set; fetches are
//! answered from the store. Malformed requests and badly signed events count as strikes against
//! the sender. Requests are handled concurrently, with a bound.

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use starling_core::{Ingest, IngestError, Origin};
use std::collections::{HashMap, HashSet};

use starling_proto::{Filter, PublicKey, Timestamp};
use starling_store::EventStore;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::budget::{self, Admission, PeerBudgets};
use crate::handle::{Inbound, Network};
use crate::held::Holdings;
use crate::keep_alive::Reason;
use crate::outbox::OutboxDb;
use crate::policy::Policy;
use crate::policy::{p_tag_keys, tagged_pubkeys};
use crate::reconcile;
use crate::served::Served;
use crate::subscribers::{self, Subscribers};
use crate::wire::{Request, RequestBody, Response, ResponseBody, WireLimits, WireMember};

/// Requests handled at once (one peer gets at most its `peer_max_in_flight` of them).
const CONCURRENCY: usize = 128;
/// Most events in one answer.
const MAX_ANSWER: usize = 500;
/// Tagged users of one event checked for an inbox this node keeps.
const MAX_INBOX_TAGS: usize = 20;

/// The parts of an event's JSON the home-set policy looks at before validation.
#[derive(serde::Deserialize)]
struct Peek {
    pubkey: String,
    #[serde(default)]
    tags: Vec<Vec<String>>,
}

/// A pushed event's author and the users it tags (at most [`MAX_INBOX_TAGS`]), read once
/// per event for the policy and for the repair hint.
pub struct Peeked {
    pub author: PublicKey,
    pub tagged: Vec<PublicKey>,
}

impl Peeked {
    /// Reads a pushed event's JSON text (not yet validated); `None` if it has no usable
    /// `pubkey`.
    pub fn read(json: &str) -> Option<Self> {
        let peek: Peek = serde_json::from_str(json).ok()?;
        Some(Self {
            author: PublicKey::from_hex(&peek.pubkey).ok()?,
            tagged: p_tag_keys(peek.tags.iter().map(Vec::as_slice))
                .take(MAX_INBOX_TAGS)
                .collect(),
        })
    }
}

/// Everything the service needs; cheap to clone into each request's task.
#[derive(Clone)]
pub struct Service {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub store: Arc<dyn EventStore>,
    pub policy: Policy,
    pub subscribers: Arc<Subscribers>,
    /// Where subscriptions are saved.
    pub db: OutboxDb,
    /// The authors this node keeps as a home-set member.
    pub holdings: Arc<Holdings>,
    /// Tells the follow task that a node stopped serving some followed authors.
    pub moved: mpsc::Sender<(PeerId, Vec<PublicKey>)>,
    /// Tells the repair task which held authors (or inboxes) just got new events, so the
    /// other members get them soon, not at the next periodic round.
    pub touched: mpsc::Sender<PublicKey>,
    pub limits: WireLimits,
    /// Requests answered, by kind.
    pub served: Arc<Served>,
    /// Each peer's request budget and cap on requests served at once.
    pub peer_requests: starling_core::Rate,
    pub peer_max_in_flight: usize,
}

/// The service of a bootstrap node, which holds no events: every request is refused
/// (malformed ones still count as strikes); the DHT and the relay do its real work.
pub async fn refuse_all(
    net: Network,
    mut inbound: mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    let limits = WireLimits::default();
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return,
            item = inbound.recv() => match item { Some(item) => item, None => return },
        };
        match item {
            Inbound::Request {
                peer,
                request,
                channel,
            } => {
                if let Err(reason) = request.check(&limits) {
                    net.strike(peer, reason).await;
                }
                net.respond(
                    channel,
                    Response::refused("this is a bootstrap node: it stores nothing"),
                )
                .await;
            }
            Inbound::Gossip {
                source, message, ..
            } => net.gossip_verdict(message, source, false).await,
        }
    }
}

impl Service {
    /// Serves inbound requests until shutdown or until the actor stops.
    pub async fn run(self, mut inbound: mpsc::Receiver<Inbound>, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut budgets = PeerBudgets::new(self.peer_requests, self.peer_max_in_flight);
        let mut tasks = JoinSet::new();
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = inbound.recv() => match item { Some(item) => item, None => break },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(peer) = done {
                        budgets.finished(peer);
                    }
                    continue;
                }
            };
            let (peer, cost) = match &item {
                Inbound::Request { peer, request, .. } => (*peer, budget::cost(&request.body)),
                Inbound::Gossip { source, .. } => (*source, 1.0),
            };
            match budgets.admit(peer, cost, std::time::Instant::now()) {
                Admission::Serve => {}
                Admission::Refuse(reason) => {
                    self.refuse(item, reason).await;
                    continue;
                }
                Admission::Strike(reason) => {
                    self.net.strike(peer, reason).await;
                    self.refuse(item, reason).await;
                    continue;
                }
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            tasks.spawn(async move {
                let _permit = permit;
                match item {
                    Inbound::Request {
                        peer,
                        request,
                        channel,
                    } => {
                        let response = this.answer(peer, request).await;
                        this.net.respond(channel, response).await;
                    }
                    Inbound::Gossip {
                        source,
                        message,
                        data,
                    } => {
                        let accept = this.on_gossip(&data).await;
                        this.net.gossip_verdict(message, source, accept).await;
                    }
                }
                peer
            });
        }
        tasks.shutdown().await;
    }

    /// Answers a request over its peer's budget without reading it.
    async fn refuse(&self, item: Inbound, reason: &str) {
        debug!(reason, "request over budget");
        match item {
            Inbound::Request { channel, .. } => {
                self.net.respond(channel, Response::refused(reason)).await
            }
            Inbound::Gossip {
                source, message, ..
            } => self.net.gossip_verdict(message, source, false).await,
        }
    }

    async fn answer(&self, peer: PeerId, request: Request) -> Response {
        if let Err(reason) = request.check(&self.limits) {
            self.net.strike(peer, reason.clone()).await;
            return Response::refused(reason);
        }
        debug!(%peer, kind = request.kind(), "request");
        self.served.count(&request.body);
        match request.body {
            RequestBody::Push { events } => self.on_push(peer, events).await,
            RequestBody::Subscribe {
                authors,
                since,
                lease_secs,
                addrs,
            } => {
                self.on_subscribe(peer, authors, since, lease_secs, addrs)
                    .await
            }
            RequestBody::Unsubscribe { authors } => {
                let authors = parse_keys(&authors).unwrap_or_default();
                self.subscribers.remove(&peer, &authors);
                subscribers::persist(&self.subscribers, &self.db, peer).await;
                if self.subscribers.get(&peer).is_none() {
                    self.net.keep_alive(peer, Reason::Follower, false).await;
                }
                Response::new(ResponseBody::Ack { results: vec![] })
            }
            RequestBody::Fetch { filters, limit } => self.on_fetch(peer, filters, limit).await,
            RequestBody::Reconcile { filter, message } => {
                let Ok(filter) = Filter::from_json(&filter) else {
                    self.net.strike(peer, "malformed filter").await;
                    return Response::refused("malformed filter");
                };
                match reconcile::answer(self.store.as_ref(), filter, &message).await {
                    Ok(message) => Response::new(ResponseBody::Reconciled {
                        message: message.into(),
                    }),
                    Err(e @ reconcile::AnswerError::BadMessage(_)) => {
                        self.net.strike(peer, e.to_string()).await;
                        Response::refused(e.to_string())
                    }
                    Err(e) => Response::refused(e.to_string()),
                }
            }
            RequestBody::Moved { authors } => {
                let authors = parse_keys(&authors).unwrap_or_default();
                let _ = self.moved.send((peer, authors)).await;
                Response::new(ResponseBody::Ack { results: vec![] })
            }
        }
    }

    async fn on_push(&self, peer: PeerId, events: Vec<String>) -> Response {
        let mut results = Vec::with_capacity(events.len());
        let mut invalid = 0;
        // Quota answers per author, asked once per push.
        let mut quota = HashMap::new();
        for json in &events {
            let policy = &self.policy;
            let peeked = Peeked::read(json);
            let (kept, full) = match &peeked {
                Some(p) => self.kept_keys(p, &mut quota).await,
                None => Default::default(),
            };
            let result = self
                .ingest
                .submit_checked(json, Origin::Network, |e| {
                    policy.may_push(e).or_else(|reason| {
                        if kept.contains(&e.pubkey) || tagged_pubkeys(e).any(|p| kept.contains(&p))
                        {
                            Ok(())
                        } else if full {
                            Err(format!(
                                "this node keeps this user's events as a home-set member, but \
                                 its quota of {} events is full",
                                self.holdings.quota()
                            ))
                        } else {
                            Err(reason)
                        }
                    })
                })
                .await;
            results.push(match result {
                Ok(ack) => {
                    if let Some(p) = peeked.as_ref().filter(|_| !ack.duplicate) {
                        self.touch(p);
                    }
                    None
                }
                Err(e) => {
                    if matches!(e, IngestError::Invalid(_)) {
                        invalid += 1;
                    }
                    Some(e.to_string())
                }
            });
        }
        if invalid > 0 {
            self.net
                .strike(peer, format!("pushed {invalid} invalid event(s)"))
                .await;
        }
        Response::new(ResponseBody::Ack { results })
    }

    async fn on_subscribe(
        &self,
        peer: PeerId,
        authors: Vec<String>,
        since: u64,
        lease_secs: u32,
        addrs: Vec<String>,
    ) -> Response {
        let Some(authors) = parse_keys(&authors) else {
            self.net
                .strike(peer, "malformed public key in a subscription")
                .await;
            return Response::refused("malformed public key");
        };
        let mut served = Vec::with_capacity(authors.len());
        for a in &authors {
            if self.holdings.accepts(a, false).await {
                served.push(*a);
            }
        }
        let Some(first) = authors.first() else {
            return Response::refused("no authors named");
        };
        if served.is_empty() {
            return self.redirect(*first).await;
        }
        let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let lease = std::time::Duration::from_secs(u64::from(lease_secs.clamp(30, 3600)));
        if !self
            .subscribers
            .add(peer, served.iter().copied(), addrs, lease)
        {
            return Response::refused("busy: too many subscribers");
        }
        subscribers::persist(&self.subscribers, &self.db, peer).await;
        self.net.keep_alive(peer, Reason::Follower, true).await;
        let filter = Filter::new()
            .authors(served)
            .since(Timestamp::from(since))
            .limit(MAX_ANSWER);
        let members = match self.net.local_home(*first).await {
            Ok(view) => view
                .set
                .members
                .iter()
                .map(WireMember::from_member)
                .collect(),
            Err(_) => Vec::new(),
        };
        match self.query(vec![filter]).await {
            Ok((events, more)) => Response::new(ResponseBody::Subscribed {
                events,
                more,
                members,
            }),
            Err(e) => Response::refused(e),
        }
    }

    /// Which of the keys an event names (author, `p` tags) this node takes events for as
    /// a home-set member: the author while under quota, any tagged user while their inbox
    /// (replies, mentions, reactions, gift wraps) is under the same quota.
    /// Empty when the owner's own policy takes the event anyway. The flag says whether
    /// some key was refused only because its quota is full (for the refusal's reason).
    async fn kept_keys(
        &self,
        peeked: &Peeked,
        quota: &mut HashMap<PublicKey, bool>,
    ) -> (HashSet<PublicKey>, bool) {
        let mut kept = HashSet::new();
        let mut full = false;
        let author = peeked.author;
        if self.policy.allows(&author, peeked.tagged.iter().copied()) {
            return (kept, full);
        }
        if self.holdings.accepts(&author, true).await {
            let under = match quota.get(&author) {
                Some(&under) => under,
                None => {
                    let under = self.holdings.within_quota(&author).await;
                    quota.insert(author, under);
                    under
                }
            };
            if under {
                kept.insert(author);
            } else {
                full = true;
            }
        }
        for &pk in &peeked.tagged {
            if !kept.contains(&pk) && self.holdings.accepts(&pk, true).await {
                if self.holdings.inbox_within_quota(&pk).await {
                    kept.insert(pk);
                } else {
                    full = true;
                }
            }
        }
        (kept, full)
    }

    /// Notes the held authors and inboxes a newly stored event belongs to.
    fn touch(&self, peeked: &Peeked) {
        let owner = self.policy.owner();
        for &pk in std::iter::once(&peeked.author).chain(&peeked.tagged) {
            if pk != owner && self.holdings.holds(&pk) {
                // A full queue only delays the sync to the periodic round.
                let _ = self.touched.try_send(pk);
            }
        }
    }

    /// Tells the asker where `author`'s events are kept.
    async fn redirect(&self, author: PublicKey) -> Response {
        match self.net.local_home(author).await {
            Ok(view) => {
                let me = self.net.peer_id();
                let members = view
                    .set
                    .members
                    .iter()
                    .filter(|m| m.peer != me)
                    .map(WireMember::from_member)
                    .collect();
                Response::new(ResponseBody::Redirect { members })
            }
            Err(e) => Response::refused(e.to_string()),
        }
    }

    async fn on_fetch(&self, peer: PeerId, filters: Vec<String>, limit: u32) -> Response {
        let mut parsed = Vec::with_capacity(filters.len());
        for f in &filters {
            match Filter::from_json(f) {
                Ok(f) => parsed.push(f),
                Err(_) => {
                    self.net.strike(peer, "malformed filter").await;
                    return Response::refused("malformed filter");
                }
            }
        }
        let limit = (limit as usize).clamp(1, MAX_ANSWER);
        let parsed = parsed
            .into_iter()
            .map(|f| match f.limit {
                Some(l) if l <= limit => f,
                _ => f.limit(limit),
            })
            .collect();
        match self.query(parsed).await {
            Ok((mut events, more)) => {
                events.truncate(limit);
                Response::new(ResponseBody::Events { events, more })
            }
            Err(e) => Response::refused(e),
        }
    }

    /// Stored events for `filters`, oldest first, and whether a limit cut some off.
    async fn query(&self, filters: Vec<Filter>) -> Result<(Vec<String>, bool), String> {
        let cap: usize = filters.iter().map(|f| f.limit.unwrap_or(MAX_ANSWER)).sum();
        let mut events = self
            .store
            .query_json(filters)
            .await
            .map_err(|e| format!("error: {e}"))?;
        let more = events.len() >= cap;
        events.reverse();
        Ok((events, more))
    }

    async fn on_gossip(&self, data: &[u8]) -> bool {
        let Ok(json) = std::str::from_utf8(data) else {
            return false;
        };
        match self
            .ingest
            .submit_checked(json, Origin::Network, |_| Ok(()))
            .await
        {
            Ok(_) => true,
            Err(IngestError::Invalid(e)) => {
                warn!(error = %e, "invalid event on the broadcast topic");
                false
            }
            // Deleted or superseded: valid, just not news.
            Err(_) => true,
        }
    }
}

/// Hex public keys of a request; `None` if any is malformed.
pub fn parse_keys(hex: &[String]) -> Option<Vec<PublicKey>> {
    hex.iter().map(|h| PublicKey::from_hex(h).ok()).collect()
}

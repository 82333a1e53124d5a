//! One subscription attempt for one followed author: try the node that served last and
//! the home-set members known from its answer (kept across restarts, see `hints`), else
//! look the home set up in the DHT, else the author's own node from its home record;
//! follow redirects. The subscription's answer carries what the serving node holds since
//! the newest event this node has of the author (so after downtime the missed events
//! come in the same round trip), and the home set as that node sees it. Then a
//! reconciliation with the serving node and one more member finds anything else missing
//! (events older than the newest held, or beyond the answer's limit) and fetches it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use starling_core::Ingest;
use starling_proto::{Event, Filter, PublicKey, Timestamp};
use tracing::debug;

use super::hints::Hint;
use crate::catchup::CatchUp;
use crate::event_times;
use crate::handle::Network;
use crate::homeset::Member;
use crate::policy::ingest_by_author;
use crate::wire::{Request, RequestBody, ResponseBody, WireMember};
use crate::NetError;

/// Candidates tried in one attempt at most (redirects add some).
const MAX_CANDIDATES: usize = 8;
/// The subscription's answer starts at least this long before now, for events that
/// crossed the subscription on the way.
const LIVE_OVERLAP_SECS: u64 = 5;

/// A subscription taken: where it is served, how many events the attempt stored, and
/// whether the catch-up reconciled with as many members as it wanted.
pub struct Taken {
    pub hint: Hint,
    pub caught_up: usize,
    pub complete: bool,
}

/// Members a catch-up reconciles with (the serving node first): two of three members
/// always include one that acknowledged every event that reached a quorum.
const RECONCILE_WITH: usize = 2;

/// What `subscribe` got back.
enum Answer {
    /// Subscribed: events newly stored, and the home set as the serving node sees it.
    Taken(usize, Vec<Member>),
    /// Not kept there: these nodes should.
    Redirect(Vec<Member>),
}

/// One subscription attempt for one author.
pub struct Attempt {
    pub net: Network,
    pub ingest: Arc<Ingest>,
    pub catch_up: CatchUp,
    pub author: PublicKey,
    pub lease: Duration,
}

impl Attempt {
    /// Tries the candidates in order until one takes the subscription.
    pub async fn run(self, hint: Option<Hint>) -> Result<Taken, NetError> {
        let me = self.net.peer_id();
        let had_hint = hint.is_some();
        let mut own_node = hint.as_ref().and_then(|h| h.own.then_some(h.serving.peer));
        let mut members = hint.as_ref().map(|h| h.members.clone()).unwrap_or_default();
        // The author's own node served last only because no member would: the members
        // are asked first again, the own node after them.
        let mut queue: Vec<Member> = Vec::new();
        if let Some(h) = hint {
            if h.own {
                queue.extend(members.iter().cloned());
                queue.push(h.serving);
            } else {
                queue.push(h.serving);
                queue.extend(members.iter().cloned());
            }
        }
        let mut tried: HashSet<PeerId> = HashSet::from([me]);
        let (mut looked_up, mut resolved) = (false, false);
        let mut last_error = NetError::NoHomeSet(self.author.to_hex());
        loop {
            let member = match queue.iter().position(|m| !tried.contains(&m.peer)) {
                Some(i) => queue.remove(i),
                None if !looked_up => {
                    looked_up = true;
                    // A hint that failed may come from a stale cache too: look up afresh.
                    match self.net.home_set(self.author, had_hint).await {
                        Ok(set) => {
                            members = set.members.clone();
                            queue.extend(set.members);
                        }
                        Err(e) => debug!(author = %self.author, error = %e, "no home set yet"),
                    }
                    continue;
                }
                None if !resolved => {
                    // Every member failed: the author's own node, from its home record.
                    resolved = true;
                    match self.net.resolve(self.author).await? {
                        Some(h) => {
                            own_node = Some(h.peer);
                            queue.push(Member {
                                peer: h.peer,
                                addrs: h.addrs,
                            });
                            continue;
                        }
                        None => return Err(last_error),
                    }
                }
                None => return Err(last_error),
            };
            if tried.len() > MAX_CANDIDATES {
                return Err(last_error);
            }
            tried.insert(member.peer);
            match self.subscribe(&member).await {
                Ok(Answer::Taken(n, seen)) => {
                    if !seen.is_empty() {
                        members = seen;
                    }
                    members.retain(|m| m.peer != me);
                    let own = own_node == Some(member.peer);
                    let (stored, complete) = self.reconcile(&member, &members).await;
                    let hint = Hint {
                        serving: member,
                        own,
                        members,
                    };
                    return Ok(Taken {
                        hint,
                        caught_up: n + stored,
                        complete,
                    });
                }
                Ok(Answer::Redirect(to)) => {
                    debug!(author = %self.author, peer = %member.peer, "redirected");
                    queue.extend(to.into_iter().filter(|m| !tried.contains(&m.peer)));
                }
                Err(e) => {
                    debug!(author = %self.author, peer = %member.peer, error = %e, "candidate failed");
                    self.net.forget_member(member.peer).await;
                    last_error = e;
                }
            }
        }
    }

    /// Subscribes at `target`, ingesting the events its answer carries: those since the
    /// newest event held of the author (or the newest few when none is held).
    async fn subscribe(&self, target: &Member) -> Result<Answer, NetError> {
        let newest = event_times::newest_stored(
            self.catch_up.store.as_ref(),
            Filter::new().author(self.author),
        )
        .await;
        let live = Timestamp::now().as_secs().saturating_sub(LIVE_OVERLAP_SECS);
        let since = if newest == 0 {
            0
        } else {
            (newest + 1).min(live)
        };
        let addrs = self
            .net
            .advertised()
            .borrow()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let request = Request::new(RequestBody::Subscribe {
            authors: vec![self.author.to_hex()],
            since,
            lease_secs: self.lease.as_secs() as u32,
            addrs,
        });
        let delivered = self
            .net
            .request(target.peer, target.addrs.clone(), request)
            .await?;
        match delivered.response.body {
            ResponseBody::Subscribed {
                events, members, ..
            } => {
                let stored = ingest_by_author(&self.ingest, &events, self.author).await;
                Ok(Answer::Taken(stored, to_members(&members)))
            }
            ResponseBody::Redirect { members } => Ok(Answer::Redirect(to_members(&members))),
            ResponseBody::Refused { reason } => Err(NetError::Refused(reason)),
            _ => Err(NetError::Protocol),
        }
    }

    /// Catches up with the serving node and one more member of the home set (the next
    /// one when a member fails); returns how many events were newly stored and whether
    /// [`RECONCILE_WITH`] members (or every known one) answered. Failures are logged,
    /// not returned: the subscription holds, and the caller retries the catch-up soon.
    async fn reconcile(&self, target: &Member, members: &[Member]) -> (usize, bool) {
        let filter = self
            .catch_up
            .window(Filter::new().author(self.author))
            .await;
        let others = members.iter().filter(|m| m.peer != target.peer);
        let candidates: Vec<&Member> = std::iter::once(target).chain(others).collect();
        let wanted = RECONCILE_WITH.min(candidates.len());
        let (mut stored, mut answered) = (0, 0);
        for member in candidates {
            if answered == wanted {
                break;
            }
            let author = self.author;
            let check = |e: &Event| {
                if e.pubkey == author {
                    Ok(())
                } else {
                    Err("not by the reconciled author".to_string())
                }
            };
            match self.catch_up.with_member(member, &filter, check).await {
                Ok(n) => {
                    stored += n;
                    answered += 1;
                }
                Err(e) => {
                    debug!(author = %self.author, peer = %member.peer, error = %e, "catch-up failed")
                }
            }
        }
        (stored, answered == wanted)
    }
}

fn to_members(wire: &[WireMember]) -> Vec<Member> {
    wire.iter()
        .filter_map(WireMember::to_member)
        .take(MAX_CANDIDATES)
        .collect()
}

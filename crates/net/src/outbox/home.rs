//! Delivery of outbox rows whose target is a home set (`home:<hex public key>`): the
//! owner's own events go to the owner's home set, and replies, mentions and reactions
//! also go to each tagged user's home set (the user's inbox while the user's node is off).
//!
//! One round pushes the rows to every member that has not taken them yet, in parallel;
//! each member's acknowledgement is recorded on the row, and a row is done once a quorum
//! of members (the configured quorum, or every member when the network has fewer) took it.
//! When this node is itself a member it counts: it holds the event already. Acknowledgements
//! from nodes that have since left the set still count: they hold the event, and the
//! members' repair copies it on.

use std::collections::HashSet;

use futures_util::future::join_all;
use starling_proto::PublicKey;
use tracing::{debug, info, warn};

use super::{db, OutboxTask};
use crate::homeset::Member;
use crate::wire::{Request, RequestBody, ResponseBody};

/// The prefix of a home-set target.
pub const HOME_PREFIX: &str = "home:";

/// The outbox target naming `user`'s home set.
pub fn home_target(user: &PublicKey) -> String {
    format!("{HOME_PREFIX}{}", user.to_hex())
}

/// What one member answered for the rows pushed to it.
enum MemberAnswer {
    /// Per row (in the order pushed): taken, or the reason it was refused.
    Results(Vec<(usize, Option<String>)>),
    Failed(String),
}

impl OutboxTask {
    /// One delivery round of `rows` to `user`'s home set (`attempts`: the target's failed
    /// rounds in a row before this one); an error when no row reached its quorum (or was
    /// given up).
    pub(super) async fn deliver_home(
        &self,
        user: &str,
        attempts: u32,
        rows: Vec<db::Due>,
    ) -> Result<(), String> {
        let Ok(pk) = PublicKey::from_hex(user) else {
            let keys = rows.iter().map(db::Due::key).collect();
            super::db::log_failed_write(
                self.db.give_up(keys, "malformed target".into()).await,
                "mark rows given up",
            );
            return Ok(());
        };
        // After a failed round the cached set may be stale: look it up again.
        let fresh = attempts > 0 || rows.iter().any(|r| r.attempts > 0);
        let set = match self.net.home_set(pk, fresh).await {
            Ok(set) => set,
            Err(e) => {
                self.round_failed(rows, &e.to_string()).await;
                return Err(e.to_string());
            }
        };
        // The set is found before the events are read: a set that cannot be found costs
        // no reads.
        let rows = self.with_json(rows).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let me = self.net.peer_id();
        let mut acks: Vec<HashSet<String>> = rows
            .iter()
            .map(|r| r.acks.iter().cloned().collect())
            .collect();
        let mut pushes = Vec::new();
        for member in &set.members {
            let id = member.peer.to_string();
            if member.peer == me {
                for a in acks.iter_mut() {
                    a.insert(id.clone());
                }
                continue;
            }
            let wanted: Vec<usize> = (0..rows.len())
                .filter(|&i| !acks[i].contains(&id))
                .collect();
            if !wanted.is_empty() {
                pushes.push(self.push_member(member.clone(), &rows, wanted));
            }
        }
        let answers = join_all(pushes).await;
        // Per row: the reason a member refused it as invalid (then it is given up).
        let mut refused: Vec<Option<String>> = vec![None; rows.len()];
        let mut failure = None;
        for (member, answer) in answers {
            match answer {
                MemberAnswer::Results(results) => {
                    for (i, result) in results {
                        match result {
                            None => {
                                acks[i].insert(member.peer.to_string());
                            }
                            Some(r) if r.starts_with("invalid") => refused[i] = Some(r),
                            Some(r) => {
                                debug!(peer = %member.peer, reason = %r, "home-set member declined");
                                failure.get_or_insert(r);
                            }
                        }
                    }
                }
                MemberAnswer::Failed(reason) => {
                    debug!(peer = %member.peer, %reason, "home-set member unreachable");
                    self.net.forget_member(member.peer).await;
                    failure.get_or_insert(reason);
                }
            }
        }
        let quorum = self.home.quorum.min(set.members.len()).max(1);
        let mut done = Vec::new();
        let mut again = Vec::new();
        let mut given_up = Vec::new();
        let mut ack_rows = Vec::new();
        for ((row, refusal), acks) in rows.into_iter().zip(refused).zip(&acks) {
            let key = row.key();
            if let Some(reason) = refusal {
                given_up.push((key, reason));
                continue;
            }
            // Acks only grow: a row no member newly took is not written again.
            if acks.len() > row.acks.len() {
                ack_rows.push((key.clone(), acks.iter().cloned().collect::<Vec<_>>()));
            }
            if acks.len() >= quorum {
                done.push(key);
            } else {
                again.push(row);
            }
        }
        let progress = !done.is_empty() || !given_up.is_empty();
        if !done.is_empty() {
            info!(%user, events = done.len(), members = set.members.len(), "home set has them");
        }
        if !ack_rows.is_empty() || !done.is_empty() {
            super::db::log_failed_write(
                self.db.record_acks(ack_rows, done).await,
                "record the members' acks",
            );
        }
        for (key, reason) in given_up {
            warn!(%user, id = %key.event_id, %reason, "home set refused the event as invalid; giving up");
            super::db::log_failed_write(
                self.db.give_up(vec![key], reason).await,
                "mark rows given up",
            );
        }
        if again.is_empty() {
            return Ok(());
        }
        let reason = failure.unwrap_or_else(|| "too few home-set members took it".into());
        if progress {
            self.reschedule(again, reason).await;
            Ok(())
        } else {
            self.round_failed(again, &reason).await;
            Err(reason)
        }
    }

    async fn push_member(
        &self,
        member: Member,
        rows: &[db::Due],
        wanted: Vec<usize>,
    ) -> (Member, MemberAnswer) {
        let events = wanted.iter().map(|&i| rows[i].json.clone()).collect();
        let request = Request::new(RequestBody::Push { events });
        let answer = match self
            .net
            .request(member.peer, member.addrs.clone(), request)
            .await
        {
            Ok(d) => match d.response.body {
                ResponseBody::Ack { results } if results.len() == wanted.len() => {
                    MemberAnswer::Results(wanted.into_iter().zip(results).collect())
                }
                ResponseBody::Refused { reason } => MemberAnswer::Failed(reason),
                _ => MemberAnswer::Failed("answered out of protocol".into()),
            },
            Err(e) => MemberAnswer::Failed(e.to_string()),
        };
        (member, answer)
    }
}

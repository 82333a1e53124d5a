//! Where each followed author was served, kept across restarts: the node that took the
//! last subscription (and whether it is the author's own) and the author's home set as
//! that node saw it. A restarted node subscribes and catches up there first instead of
//! looking every followed author's home set up in the DHT again (a lookup costs tens of
//! kilobytes; a follower of many authors would pay more for finding their events than
//! for the events). A hint that no longer holds costs one failed or redirected request:
//! the attempt then falls back to a lookup.

use std::collections::HashMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};
use starling_proto::PublicKey;
use tracing::warn;

use crate::homeset::Member;
use crate::outbox::OutboxDb;
use crate::wire::WireMember;

/// Where an author was last served.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The node that took the subscription.
    pub serving: Member,
    /// Whether that node is the author's own (no home-set member took it).
    pub own: bool,
    /// The author's home set as the serving node (or the last lookup) saw it.
    pub members: Vec<Member>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    serving: WireMember,
    own: bool,
    members: Vec<WireMember>,
}

impl Hint {
    fn to_json(&self) -> String {
        let stored = Stored {
            serving: WireMember::from_member(&self.serving),
            own: self.own,
            members: self.members.iter().map(WireMember::from_member).collect(),
        };
        serde_json::to_string(&stored).expect("a hint serializes")
    }

    fn from_json(json: &str) -> Option<Self> {
        let stored: Stored = serde_json::from_str(json).ok()?;
        Some(Self {
            serving: stored.serving.to_member()?,
            own: stored.own,
            members: stored
                .members
                .iter()
                .filter_map(WireMember::to_member)
                .collect(),
        })
    }
}

/// Every stored hint (unreadable rows are skipped).
pub async fn load(db: &OutboxDb) -> HashMap<PublicKey, Hint> {
    let rows = db
        .with(|c| {
            let mut stmt = c.prepare("SELECT author, hint FROM follow_hints")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(a, h)| Some((PublicKey::from_hex(&a).ok()?, Hint::from_json(&h)?)))
            .collect(),
        Err(e) => {
            warn!(error = %e, "could not read the follow hints");
            HashMap::new()
        }
    }
}

/// Stores `hint` for `author`, or forgets the author's hint when `None`.
pub async fn save(db: &OutboxDb, author: PublicKey, hint: Option<&Hint>, now: u64) {
    let author = author.to_hex();
    let json = hint.map(Hint::to_json);
    let done = db
        .with(move |c| match json {
            Some(json) => c.execute(
                "INSERT INTO follow_hints (author, hint, updated) VALUES (?1, ?2, ?3)
                 ON CONFLICT (author) DO UPDATE SET hint = excluded.hint, updated = excluded.updated",
                params![author, json, now as i64],
            ),
            None => c.execute("DELETE FROM follow_hints WHERE author = ?1", params![author]),
        })
        .await;
    if let Err(e) = done {
        warn!(error = %e, "could not save a follow hint");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn member(port: u64) -> Member {
        Member {
            peer: Keypair::generate_ed25519().public().to_peer_id(),
            addrs: vec![format!("/memory/{port}").parse().unwrap()],
        }
    }

    #[tokio::test]
    async fn hints_survive_reopen_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let author = starling_proto::Keys::generate().public_key();
        let other = starling_proto::Keys::generate().public_key();
        let hint = Hint {
            serving: member(1),
            own: false,
            members: vec![member(1), member(2), member(3)],
        };
        let db = OutboxDb::open(&path).unwrap();
        save(&db, author, Some(&hint), 10).await;
        save(&db, other, Some(&hint), 10).await;
        save(&db, other, None, 11).await;
        drop(db);
        let loaded = load(&OutboxDb::open(&path).unwrap()).await;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded.get(&author), Some(&hint));
    }
}

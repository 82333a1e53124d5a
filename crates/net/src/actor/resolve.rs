//! Pending home-record lookups. Every record a DHT lookup finds is checked; the lookup is
//! answered with the newest valid one, either when the query ends or shortly after the
//! first valid record arrived (a lookup can take long to exhaust the network, and a stale
//! copy is rare: a node republishes its record when its addresses change).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::kad::QueryId;
use starling_proto::PublicKey;
use tokio::sync::oneshot;
use tracing::debug;

use crate::home::HomeRecord;
use crate::NetError;

/// How long a lookup keeps looking for a newer record after it found a valid one.
const LINGER: Duration = Duration::from_millis(750);

type Reply = oneshot::Sender<Result<Option<HomeRecord>, NetError>>;

struct Pending {
    author: PublicKey,
    reply: Reply,
    best: Option<HomeRecord>,
    deadline: Option<Instant>,
}

/// Lookups in flight, by query.
#[derive(Default)]
pub(super) struct Resolves {
    pending: HashMap<QueryId, Pending>,
}

/// What a found record turned out to be.
pub(super) enum Found {
    Valid,
    Invalid(String),
    Unknown,
}

impl Resolves {
    pub fn start(&mut self, id: QueryId, author: PublicKey, reply: Reply) {
        self.pending.insert(
            id,
            Pending {
                author,
                reply,
                best: None,
                deadline: None,
            },
        );
    }

    /// Checks a record found by query `id`.
    pub fn found(&mut self, id: QueryId, value: &[u8]) -> Found {
        let Some(p) = self.pending.get_mut(&id) else {
            return Found::Unknown;
        };
        let Ok(json) = std::str::from_utf8(value) else {
            return Found::Invalid("record is not UTF-8".into());
        };
        match HomeRecord::from_json(json, Some(&p.author)) {
            Ok(record) => {
                if p.best
                    .as_ref()
                    .is_none_or(|b| b.created_at < record.created_at)
                {
                    p.best = Some(record);
                }
                p.deadline.get_or_insert(Instant::now() + LINGER);
                Found::Valid
            }
            Err(e) => Found::Invalid(e.to_string()),
        }
    }

    /// The query ended (or failed): answer with what was found.
    pub fn finish(&mut self, id: QueryId) {
        if let Some(p) = self.pending.remove(&id) {
            debug!(author = %p.author, found = p.best.is_some(), "home lookup done");
            let _ = p.reply.send(Ok(p.best));
        }
    }

    /// Queries past their deadline; they are answered now and should be stopped.
    pub fn due(&mut self, now: Instant) -> Vec<QueryId> {
        let due: Vec<QueryId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &due {
            self.finish(*id);
        }
        due
    }
}

//! The owner's events are queued without their JSON: the event store holds it already, so
//! a row is only (event, target, state), and a delivery round reads the JSON of its rows
//! from the store. An event the store no longer has (deleted by its author, replaced by a
//! newer version, or expired) has nothing left to deliver: its rows are given up.
//! Rows queued with their JSON (gift wraps, and rows from before this change) keep it.

use std::collections::HashMap;

use starling_proto::{raw_event_id, EventId, Filter};
use tracing::{debug, warn};

use super::{db, OutboxTask};

/// The reason recorded on rows whose event is gone from the store.
const GONE: &str = "the event is no longer stored (deleted, replaced or expired)";

impl OutboxTask {
    /// `rows` with their JSON, minus rows whose event is gone (given up here). An error
    /// when the store could not be read (the rows are retried later).
    pub(super) async fn with_json(&self, rows: Vec<db::Due>) -> Result<Vec<db::Due>, String> {
        let wanted: Vec<EventId> = rows
            .iter()
            .filter(|r| r.json.is_empty())
            .filter_map(|r| EventId::from_hex(&r.event_id).ok())
            .collect();
        if wanted.is_empty() {
            return Ok(rows);
        }
        let filter = Filter::new()
            .ids(wanted.iter().copied())
            .limit(wanted.len());
        let mut found: HashMap<String, String> = match self.store.query_json(vec![filter]).await {
            Ok(texts) => texts.into_iter().map(|j| (raw_event_id(&j), j)).collect(),
            Err(e) => {
                warn!(error = %e, "cannot read queued events from the store; will retry");
                let reason = format!("cannot read the event store: {e}");
                self.round_failed(rows, &reason).await;
                return Err(reason);
            }
        };
        let mut ready = Vec::with_capacity(rows.len());
        let mut gone = Vec::new();
        for mut row in rows {
            if row.json.is_empty() {
                match found.remove(&row.event_id) {
                    Some(json) => row.json = json,
                    None => {
                        gone.push(row.key());
                        continue;
                    }
                }
            }
            ready.push(row);
        }
        if !gone.is_empty() {
            debug!(
                rows = gone.len(),
                "queued events no longer stored; giving them up"
            );
            db::log_failed_write(
                self.db.give_up(gone, GONE.into()).await,
                "mark rows given up",
            );
        }
        Ok(ready)
    }
}

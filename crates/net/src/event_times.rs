//! Event times read cheaply, for catch-ups: an event's `created_at` from its JSON text
//! without parsing the whole event, the oldest of a page of events (the next page's
//! `until`), and the newest stored event matching a filter (the next catch-up's `since`).

use starling_proto::{Filter, Timestamp};
use starling_store::EventStore;

/// `created_at` of an event given as JSON text, if it has one.
pub fn created_at(json: &str) -> Option<Timestamp> {
    #[derive(serde::Deserialize)]
    struct CreatedAt {
        created_at: u64,
    }
    serde_json::from_str::<CreatedAt>(json)
        .ok()
        .map(|c| Timestamp::from(c.created_at))
}

/// The oldest `created_at` among `events` (JSON texts).
pub fn oldest(events: &[String]) -> Option<Timestamp> {
    events.iter().filter_map(|j| created_at(j)).min()
}

/// `created_at` (seconds) of the newest stored event matching `filter`; 0 when none.
pub async fn newest_stored(store: &dyn EventStore, filter: Filter) -> u64 {
    match store.query(vec![filter.limit(1)]).await {
        Ok(events) => events.first().map_or(0, |e| e.created_at.as_secs()),
        Err(_) => 0,
    }
}

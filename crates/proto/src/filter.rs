//! NIP-01 filter matching, the reference semantics that the store's SQL and the live
//! subscriptions both follow. NIP-50 `search` is not supported and is ignored.

use nostr::filter::MatchEventOptions;
use nostr::prelude::{Event, Filter};

const OPTIONS: MatchEventOptions = MatchEventOptions::new().nip50(false);

/// Whether `event` matches `filter` (ids, authors, kinds, `#x` tags, since, until).
pub fn matches(filter: &Filter, event: &Event) -> bool {
    filter.match_event(event, OPTIONS)
}

/// Whether `event` matches at least one of `filters`.
pub fn matches_any(filters: &[Filter], event: &Event) -> bool {
    filters.iter().any(|f| matches(f, event))
}

/// The number of stored events a filter asks for: its `limit`, lowered to `max_limit`.
pub fn effective_limit(filter: &Filter, max_limit: usize) -> usize {
    filter.limit.map_or(max_limit, |l| l.min(max_limit))
}

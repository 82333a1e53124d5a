//! Size and shape limits applied to everything a client or peer sends. One value of
//! [`Limits`] is built from the node's config and passed down to the validators and to the
//! relay's connection handlers.

use serde::{Deserialize, Serialize};

/// Limits on events, filters and subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted event, in bytes of its JSON form.
    pub max_event_bytes: usize,
    /// Most tags one event may carry.
    pub max_tags: usize,
    /// Most elements one tag may carry.
    pub max_tag_elements: usize,
    /// Largest client message (a WebSocket frame), in bytes.
    pub max_message_bytes: usize,
    /// Most filters one REQ or COUNT may carry.
    pub max_filters: usize,
    /// Most open subscriptions per connection.
    pub max_subscriptions: usize,
    /// Longest subscription id, in characters.
    pub max_subid_chars: usize,
    /// Most events one filter returns from storage (a larger `limit` is lowered to this).
    pub max_limit: usize,
    /// Most ids, authors, kinds or tag values listed in one filter field.
    pub max_filter_values: usize,
    /// How far in the future `created_at` may be, in seconds.
    pub max_future_secs: u64,
    /// How far in the past `created_at` may be, in seconds; `None` accepts any age, which
    /// the node needs to import history and sync with peers.
    pub max_past_secs: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 64 * 1024,
            max_tags: 2000,
            max_tag_elements: 32,
            max_message_bytes: 512 * 1024,
            max_filters: 10,
            max_subscriptions: 32,
            max_subid_chars: 64,
            max_limit: 5000,
            max_filter_values: 1000,
            max_future_secs: 15 * 60,
            max_past_secs: None,
        }
    }
}

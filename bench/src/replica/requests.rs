//! Counting the requests nodes serve, from outside `crates/net`: the request service logs
//! `debug!(peer, kind, "request")` for every inbound request it answers, so a tracing
//! layer that listens to that one target counts them by kind. The count is network-wide:
//! the event names the asking peer, not the serving node, and no span tells the nodes
//! apart, so it cannot be split per serving node (a per-node counter in the node's
//! `status` would allow that).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The module whose "request" events are counted.
const TARGET: &str = "starling_net::service";

/// Requests served, by kind; cheap to clone. The map is tiny and each update is one
/// insert, so a plain mutex, never held across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct Requests(Arc<Mutex<BTreeMap<String, u64>>>);

impl Requests {
    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The counting layer, with the filter that lets only the service's debug events in.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Counter(self.clone()).with_filter(Targets::new().with_target(TARGET, Level::DEBUG))
    }
}

struct Counter(Requests);

#[derive(Default)]
struct Fields {
    message: bool,
    kind: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.kind = Some(value.to_owned()),
            "message" => self.message = value == "request",
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}") == "request";
        }
    }
}

impl<S: Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (true, Some(kind)) = (fields.message, fields.kind) {
            if let Ok(mut map) = (self.0).0.lock() {
                *map.entry(kind).or_default() += 1;
            }
        }
    }
}

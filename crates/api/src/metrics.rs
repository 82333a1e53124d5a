//! `GET /metrics`: the node's figures in the Prometheus text format (version 0.0.4), written
//! by hand from the same snapshots `GET /api/status` reads (the store's stats, the ingest
//! counters, the API's connection and subscription counts, the network's status), so the
//! node keeps no metrics registry of its own. Served to the owner only, like the status.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::ApiState;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric families written in the text format.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// One family's `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample, `labels` as `key="value"` pairs (values here never need escaping).
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per `label` value, read from the fields of `object`.
    fn labelled(&mut self, name: &str, kind: &str, help: &str, label: &str, object: &Value) {
        let Some(fields) = object.as_object() else {
            return;
        };
        self.family(name, kind, help);
        for (key, value) in fields {
            if let Some(n) = value.as_u64() {
                self.sample(name, &[(label, key)], n);
            }
        }
    }
}

pub async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let stats = match state.store.stats().await {
        Ok(stats) => stats,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut out = Exposition::default();
    out.single(
        "starling_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        state.started.elapsed().as_secs(),
    );
    out.single(
        "starling_events_stored",
        "gauge",
        "Events in the store.",
        stats.events,
    );
    out.single(
        "starling_event_bytes",
        "gauge",
        "Bytes of the stored events' JSON.",
        stats.event_bytes,
    );
    let counts = state.ingest.counts();
    let name = "starling_ingest_events_total";
    out.family(
        name,
        "counter",
        "Events submitted to the ingest path, by result.",
    );
    out.sample(name, &[("result", "accepted")], counts.accepted);
    out.sample(name, &[("result", "duplicate")], counts.duplicate);
    out.sample(name, &[("result", "rejected")], counts.rejected);
    out.single(
        "starling_websocket_connections",
        "gauge",
        "Open client WebSocket connections.",
        state.connections.load(Ordering::Relaxed) as u64,
    );
    out.single(
        "starling_req_subscriptions",
        "gauge",
        "Open REQ subscriptions of clients.",
        state.subscriptions.load(Ordering::Relaxed) as u64,
    );
    if let Some(remote) = &state.remote {
        network(&mut out, &remote.status().await);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0).into_response()
}

/// The peer-to-peer network's figures, from its status document.
fn network(out: &mut Exposition, net: &Value) {
    let count = |key: &str| net.get(key).and_then(Value::as_u64).unwrap_or(0);
    let peers = net
        .get("peers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    out.single(
        "starling_peers_connected",
        "gauge",
        "Peers connected.",
        peers as u64,
    );
    for (name, key, help) in [
        (
            "starling_dht_routing_peers",
            "dht_routing_peers",
            "Peers in the DHT routing table.",
        ),
        ("starling_follows", "follows", "Authors the owner follows."),
        (
            "starling_follows_subscribed",
            "subscribed",
            "Followed authors with a live subscription.",
        ),
        (
            "starling_subscribers",
            "subscribers",
            "Nodes subscribed to the owner's events here.",
        ),
        (
            "starling_home_set_authors",
            "home_for",
            "Authors whose events this node keeps as a home-set member.",
        ),
    ] {
        out.single(name, "gauge", help, count(key));
    }
    let empty = Value::Null;
    out.labelled(
        "starling_outbox_deliveries",
        "gauge",
        "Deliveries in the outbox, by state.",
        "state",
        net.get("outbox").unwrap_or(&empty),
    );
    out.labelled(
        "starling_requests_served_total",
        "counter",
        "Peer requests answered since the node started, by kind.",
        "kind",
        net.get("requests_served").unwrap_or(&empty),
    );
    out.labelled(
        "starling_catch_up",
        "gauge",
        "The catch-up in progress: events missing, fetched, in flight; reconcile bytes.",
        "figure",
        net.get("catch_up").unwrap_or(&empty),
    );
}

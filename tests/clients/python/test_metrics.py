"""`GET /metrics` of a real node with its peer-to-peer network on: the Prometheus text
format, every family the README lists, and figures that move when the owner posts."""

from __future__ import annotations

import re

from starling_harness import http_request, publish_ok, run, sign

SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\d+)$')


def scrape(node) -> dict[str, int]:
    resp = http_request(node.http, "/metrics", method="GET")
    assert resp.status == 200, (resp.status, resp.body[:300])
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4"), resp.headers
    samples: dict[str, int] = {}
    for line in resp.body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return samples


def test_metrics_of_a_running_node(node):
    before = scrape(node)
    for family in [
        "starling_events_stored", "starling_event_bytes", "starling_websocket_connections",
        "starling_req_subscriptions", "starling_peers_connected", "starling_dht_routing_peers",
        "starling_subscribers", "starling_home_set_authors", "starling_follows",
        'starling_ingest_events_total{result="accepted"}',
        'starling_outbox_deliveries{state="pending"}',
        'starling_outbox_deliveries{state="delivered"}',
        'starling_outbox_deliveries{state="given_up"}',
        'starling_requests_served_total{kind="fetch"}',
        'starling_catch_up{figure="fetched"}',
    ]:
        assert family in before, f"{family} missing from /metrics: {sorted(before)}"

    for i in range(3):
        run(publish_ok(node.url, sign(node.owner.keys, 1, f"counted {i}")))
    after = scrape(node)
    assert after["starling_events_stored"] >= before["starling_events_stored"] + 3
    accepted = 'starling_ingest_events_total{result="accepted"}'
    assert after[accepted] >= before[accepted] + 3
    assert after["starling_event_bytes"] > before["starling_event_bytes"]

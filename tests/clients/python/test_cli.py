"""The CLI contract: keygen output, init, run's relay line, SIGTERM shutdown, NIP-11."""

from __future__ import annotations

import json

import nostr_sdk as ns

from starling_harness import http_request, keygen, publish_ok, query, run, sign


def test_keygen_prints_a_consistent_key_pair():
    a = keygen()  # asserts nsec/npub/hex lines exist and belong together
    b = keygen()
    assert a.hex != b.hex, "two keygen runs printed the same key"
    assert ns.PublicKey.parse(a.npub).to_hex() == a.hex


def test_sigterm_shuts_down_cleanly_and_data_survives_restart(node):
    ev = sign(node.owner.keys, 1, "survives a clean restart")
    run(publish_ok(node.url, ev))
    rc = node.node.stop(timeout=15)
    assert rc == 0, f"starling exited with {rc} after SIGTERM (expected a clean exit 0)"
    node.node.start()
    got = run(query(node.url, {"ids": [ev["id"]]}))
    assert got == [ev]


def test_nip11_relay_information_document(node):
    resp = http_request(node.http, "/", method="GET", headers={"Accept": "application/nostr+json",
                                                                 "Origin": "http://client.test"})
    assert resp.status == 200, (resp.status, resp.body[:300])
    info = json.loads(resp.body)
    assert isinstance(info, dict), info
    nips = info.get("supported_nips")
    assert isinstance(nips, list), f"supported_nips missing: {info}"
    for nip in (1, 9, 11, 45):
        assert nip in nips, f"NIP-{nip} not in supported_nips {nips}"
    # NIP-11: relays MUST accept CORS requests (Access-Control-Allow-Origin on this document).
    assert resp.headers.get("access-control-allow-origin") in ("*", "http://client.test"), resp.headers

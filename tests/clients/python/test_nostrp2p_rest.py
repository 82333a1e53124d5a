"""The NostrP2P Flutter client's REST API (shared/NOSTRP2P_COMPAT.md), decoded the way
that client decodes it: gunzip, msgpack map {"Evts": [...]}, events with bin ids and tags."""

from __future__ import annotations

import gzip
import hashlib
import json
import time

import msgpack
import nostr_sdk as ns

from starling_harness import NP2P_EVENT_KEYS, http_request, post_json, query, run, sign, tamper_hex


# --------------------------------------------------------------------------- decoding

def np2p_req(node, filt: dict) -> list[dict]:
    """POST /req exactly as the Flutter client does; return the decoded event maps."""
    resp = post_json(node.http, "/req", filt)
    assert resp.status == 200, f"/req {filt} -> {resp.status} {resp.body[:300]!r}"
    assert resp.headers.get("content-encoding") == "gzip", resp.headers
    assert resp.headers.get("content-type") == "application/octet-stream", resp.headers
    body = gzip.decompress(resp.body)
    # raw=False: msgpack str -> Python str, bin -> bytes, so the two stay distinguishable.
    doc = msgpack.unpackb(body, raw=False, strict_map_key=False)
    assert isinstance(doc, dict) and "Evts" in doc, f"not a map with Evts: {doc!r:.300}"
    evts = doc["Evts"]
    assert isinstance(evts, list), f"Evts is not a list: {evts!r:.200}"
    return evts


def np2p_to_nip01(m: dict) -> dict:
    """Check the exact shape of one msgpack event and convert it to a NIP-01 dict (sig may be None)."""
    assert set(m) == NP2P_EVENT_KEYS, f"event keys {sorted(m)} != {sorted(NP2P_EVENT_KEYS)}"
    assert type(m["Id"]) is bytes and len(m["Id"]) == 32, f"Id must be bin(32): {m['Id']!r}"
    assert type(m["Pubkey"]) is bytes and len(m["Pubkey"]) == 32, f"Pubkey must be bin(32): {m['Pubkey']!r}"
    assert type(m["Created_at"]) is float, f"Created_at must be a float: {m['Created_at']!r}"
    assert type(m["Kind"]) is int and 0 <= m["Kind"] <= 65535, f"Kind must be a u16 int: {m['Kind']!r}"
    assert type(m["Tags"]) is list, m["Tags"]
    for tag in m["Tags"]:
        assert type(tag) is list, f"tag is not a list: {tag!r}"
        for el in tag:
            assert type(el) is bytes, f"tag element must be bin, got {type(el).__name__}: {el!r} in {tag!r}"
    assert type(m["Content"]) is str, f"Content must be str: {m['Content']!r}"
    assert m["Sig"] is None or (type(m["Sig"]) is bytes and len(m["Sig"]) == 64), \
        f"Sig must be bin(64) or nil: {m['Sig']!r}"
    return {
        "id": m["Id"].hex(),
        "pubkey": m["Pubkey"].hex(),
        "created_at": m["Created_at"],
        "kind": m["Kind"],
        "tags": [[el.decode("utf-8") for el in tag] for tag in m["Tags"]],
        "content": m["Content"],
        "sig": m["Sig"].hex() if m["Sig"] is not None else None,
    }


def assert_same_event(got: dict, ev: dict) -> None:
    """got (from np2p_to_nip01) carries exactly ev; the sig, when sent, is ev's sig."""
    assert got["created_at"] == float(ev["created_at"]), (got["created_at"], ev["created_at"])
    expected = dict(ev, created_at=float(ev["created_at"]))
    if got["sig"] is None:
        expected["sig"] = None
    assert got == expected
    # And the id really is the NIP-01 hash of what was returned (tags survived byte-exact).
    ser = json.dumps([0, got["pubkey"], int(got["created_at"]), got["kind"], got["tags"], got["content"]],
                     separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(ser.encode()).hexdigest() == got["id"]


def assert_events(node, filt: dict, expected: list[dict]) -> None:
    got = [np2p_to_nip01(m) for m in np2p_req(node, filt)]
    assert [g["id"] for g in got] == [e["id"] for e in expected], \
        f"/req {filt}: ids {[g['id'][:8] for g in got]} != expected {[e['id'][:8] for e in expected]}"
    for g, e in zip(got, expected):
        assert_same_event(g, e)


def publish(node, ev: dict) -> None:
    resp = post_json(node.http, "/publish", ev)
    assert resp.status == 200, f"/publish kind {ev['kind']} -> {resp.status} {resp.body[:300]!r}"
    assert resp.json() == {"Status": "SUCCESS"}, resp.body


# --------------------------------------------------------------------------- tests

def test_publish_every_kind_the_client_sends_then_read_back(node):
    k, me = node.owner.keys, node.owner.hex
    other = ns.Keys.generate().public_key().to_hex()
    now = int(time.time())

    profile = sign(k, 0, json.dumps({"name": "alice", "about": "starling ✓", "picture": "http://pic.test/a.png"}),
                   created_at=now - 100)
    post = sign(k, 1, "first post, ünïcödé 日本", created_at=now - 90)
    reply = sign(k, 1, "a reply", tags=[["e", post["id"], "", "root"], ["p", me]], created_at=now - 80)
    mention = sign(k, 1, "hi nostr:" + ns.PublicKey.parse(other).to_bech32(), tags=[["p", other]],
                   created_at=now - 70)
    quote = sign(k, 1, "quoting nostr:" + ns.EventId.parse(post["id"]).to_bech32(),
                 tags=[["e", post["id"], "", "mention"], ["p", me], ["q"]], created_at=now - 60)
    follows = sign(k, 3, "", tags=[["p", other, "", ""], ["p", me, "", ""]], created_at=now - 50)
    repost = sign(k, 6, json.dumps(post), tags=[["e", post["id"], ""], ["p", me]], created_at=now - 40)
    reaction = sign(k, 7, "+", tags=[["e", post["id"]], ["p", me]], created_at=now - 30)

    events = [profile, post, reply, mention, quote, follows, repost, reaction]
    for ev in events:
        publish(node, ev)

    # Each one is stored exactly as sent (read over the node's NIP-01 relay).
    for ev in events:
        assert run(query(node.url, {"ids": [ev["id"]]})) == [ev], f"kind {ev['kind']} not readable"

    # And through /req's dispatches.
    assert_events(node, {"kinds": [0], "authors": [me]}, [profile])
    assert_events(node, {"kinds": [3], "authors": [me]}, [follows])
    for ev in (post, reply, mention, quote):
        assert_events(node, {"ids": [ev["id"]], "authors": [me], "kinds": [1]}, [ev])


def test_req_dispatch_timeline_and_misses(node):
    k, me = node.owner.keys, node.owner.hex
    now = int(time.time())
    posts = [sign(k, 1, f"timeline {i}", created_at=now - 100 + 10 * i) for i in range(5)]
    # Publish out of order: the answer must still be oldest first.
    for ev in (posts[3], posts[0], posts[4], posts[1], posts[2]):
        publish(node, ev)

    # First timeline load.
    assert_events(node, {"kinds": [40000], "since": -1, "until": -1, "limit": 300}, posts)
    # limit keeps the newest ones, still oldest first.
    assert_events(node, {"kinds": [40000], "since": -1, "until": -1, "limit": 2}, posts[3:])
    # 0 means "no bound" too.
    assert_events(node, {"kinds": [40000], "since": 0, "until": 0, "limit": 300}, posts)
    # The 10-second poll: since=<last poll>, until=<now>, limit=-1.
    assert_events(node, {"kinds": [40000], "since": now - 85, "until": int(time.time()), "limit": -1}, posts[2:])
    assert_events(node, {"kinds": [40000], "since": now - 85, "until": now - 65, "limit": -1}, posts[2:4])
    assert_events(node, {"kinds": [40000], "since": now + 1000, "until": now + 2000, "limit": -1}, [])

    # A reaction is stored, but any kind other than 40000/1/0/3 answers an empty list.
    reaction = sign(k, 7, "+", tags=[["e", posts[0]["id"]], ["p", me]])
    publish(node, reaction)
    assert run(query(node.url, {"ids": [reaction["id"]]})) == [reaction]
    assert np2p_req(node, {"kinds": [7], "authors": [me]}) == []
    assert np2p_req(node, {"kinds": [6], "authors": [me]}) == []

    # Misses are answered at once with an empty list.
    stranger = ns.Keys.generate().public_key().to_hex()
    t0 = time.monotonic()
    assert np2p_req(node, {"ids": [hashlib.sha256(b"nothing").hexdigest()], "authors": [me], "kinds": [1]}) == []
    assert np2p_req(node, {"kinds": [0], "authors": [me]}) == []
    assert np2p_req(node, {"kinds": [3], "authors": [me]}) == []
    assert np2p_req(node, {"kinds": [0], "authors": [stranger]}) == []
    assert time.monotonic() - t0 < 5, "misses were not answered at once"


def test_publish_refusals_and_cors(node):
    k = node.owner.keys
    ev = sign(k, 1, "bad sig over REST")
    ev["sig"] = tamper_hex(ev["sig"], 30)
    resp = post_json(node.http, "/publish", ev)
    assert resp.status == 400, f"bad signature -> {resp.status} {resp.body[:200]!r}"
    err = resp.json()
    assert isinstance(err, dict) and isinstance(err.get("Error"), str) and err["Error"], resp.body

    ev = sign(k, 1, "bad id over REST")
    ev["id"] = hashlib.sha256(b"other").hexdigest()
    resp = post_json(node.http, "/publish", ev)
    assert 400 <= resp.status < 500, f"id not the hash -> {resp.status} {resp.body[:200]!r}"
    assert isinstance(resp.json().get("Error"), str), resp.body

    foreign = sign(ns.Keys.generate(), 1, "not the owner, over REST")
    resp = post_json(node.http, "/publish", foreign)
    assert 400 <= resp.status < 500, f"foreign event -> {resp.status} {resp.body[:200]!r}"
    assert isinstance(resp.json().get("Error"), str), resp.body
    assert run(query(node.url, {"ids": [foreign["id"]]})) == []

    # Malformed JSON is a 400 with an Error body, not a crash or a 500.
    resp = http_request(node.http, "/publish", method="POST", body=b'{"id": "abc", ',
                        headers={"Content-Type": "application/json"})
    assert resp.status == 400, f"malformed JSON -> {resp.status} {resp.body[:200]!r}"
    assert isinstance(resp.json().get("Error"), str), resp.body

    good = sign(k, 1, "sent as text/plain")
    resp = post_json(node.http, "/publish", good, content_type="text/plain")
    assert resp.status == 415, f"text/plain /publish -> {resp.status}"
    resp = post_json(node.http, "/req", {"kinds": [40000], "since": -1, "until": -1, "limit": 300},
                     content_type="text/plain")
    assert resp.status == 415, f"text/plain /req -> {resp.status}"
    # None of the refused events was stored.
    assert np2p_req(node, {"kinds": [40000], "since": -1, "until": -1, "limit": 300}) == []

    origin = "http://flutter-client.test:8080"
    for path in ("/publish", "/req"):
        resp = http_request(node.http, path, method="OPTIONS", headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
            "Access-Control-Request-Private-Network": "true",
        })
        h = resp.headers
        assert resp.status in (200, 204), f"OPTIONS {path} -> {resp.status}"
        assert h.get("access-control-allow-origin") in (origin, "*"), h
        methods = {m.strip().upper() for m in h.get("access-control-allow-methods", "").split(",")}
        assert {"POST", "OPTIONS"} <= methods, f"allow-methods {methods}"
        assert h.get("access-control-allow-private-network") == "true", h
        assert h.get("access-control-allow-credentials") == "true", h
        assert h.get("access-control-max-age") == "3600", h
        allowed_headers = h.get("access-control-allow-headers", "").lower()
        assert "content-type" in allowed_headers or allowed_headers.strip() == "*", h

    # The real request carries the CORS answer too (a browser drops the body otherwise).
    resp = http_request(node.http, "/req", method="POST",
                        body=json.dumps({"kinds": [0], "authors": [node.owner.hex]}).encode(),
                        headers={"Content-Type": "application/json", "Origin": origin})
    assert resp.status == 200, resp.status
    assert resp.headers.get("access-control-allow-origin") in (origin, "*"), resp.headers


def test_plain_application_json_is_accepted_too(node):
    """The client's own header is 'application/json; charset=utf-8' (used everywhere above);
    a bare 'application/json' must work the same."""
    ev = sign(node.owner.keys, 1, "bare content type")
    resp = post_json(node.http, "/publish", ev, content_type="application/json")
    assert resp.status == 200 and resp.json() == {"Status": "SUCCESS"}, (resp.status, resp.body[:200])
    resp = post_json(node.http, "/req", {"ids": [ev["id"]], "authors": [node.owner.hex], "kinds": [1]},
                     content_type="application/json")
    assert resp.status == 200, resp.status
    evts = msgpack.unpackb(gzip.decompress(resp.body), raw=False)["Evts"]
    assert [np2p_to_nip01(m)["id"] for m in evts] == [ev["id"]]

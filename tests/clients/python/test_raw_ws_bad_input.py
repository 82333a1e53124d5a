"""Bad input on ONE raw NIP-01 WebSocket connection: each is answered with the right
message kind, nothing bad is stored, and the connection keeps working after each."""

from __future__ import annotations

import hashlib
import json

import nostr_sdk as ns

from starling_harness import RawRelay, has_nip01_prefix, http_request, run, short, sign, tamper_hex


def test_bad_input_is_refused_and_connection_survives(node):
    keys = node.owner.keys

    async def body():
        relay = await RawRelay.open(node.url)
        try:
            async def still_works_and_absent(event_id: str | None):
                """A valid REQ gets EOSE on the same connection; the bad event is not stored."""
                filt = {"ids": [event_id]} if event_id else {"kinds": [1], "limit": 1}
                got = await relay.req(filt)
                if event_id:
                    assert got == [], f"refused event {event_id} was stored: {short(got)}"

            async def expect_refused(ev: dict, prefix: str):
                ok = await relay.publish(ev)
                assert ok[2] is False, f"expected OK false ({prefix}) for {ev['id']}, got {short(ok)}"
                assert ok[3].startswith(prefix), f"OK reason should start with {prefix!r}: {short(ok)}"
                assert has_nip01_prefix(ok[3]), ok
                await still_works_and_absent(ev["id"])

            async def expect_notice(raw: str):
                await relay.send(raw)
                msg = await relay.recv()
                assert msg[0] == "NOTICE" and len(msg) == 2 and isinstance(msg[1], str) and msg[1], \
                    f"expected a NOTICE for {raw[:60]!r}, got {short(msg)}"

            # 0. sanity: the connection works and an owner-signed event is accepted.
            good = sign(keys, 1, "good one")
            ok = await relay.publish(good)
            assert ok[2] is True, ok
            assert await relay.req({"ids": [good["id"]]}) == [good]

            # 1. invalid signature (a valid-looking hex string of the right length).
            ev = sign(keys, 1, "bad signature")
            ev["sig"] = tamper_hex(ev["sig"], 20)
            await expect_refused(ev, "invalid:")

            # 2. id that is not the event's hash (a well-formed, unrelated hash).
            ev = sign(keys, 1, "bad id")
            ev["id"] = hashlib.sha256(b"not the event").hexdigest()
            await expect_refused(ev, "invalid:")

            # 2b. content changed after signing (id and sig both stale).
            ev = sign(keys, 1, "original content")
            ev["content"] = "tampered content"
            await expect_refused(ev, "invalid:")

            # 3. malformed JSON.
            await expect_notice('["EVENT", {"id": ')
            await still_works_and_absent(None)

            # 4. unknown message type.
            await expect_notice('["FOO"]')
            await still_works_and_absent(None)

            # 4b. JSON that is not a message array.
            await expect_notice('{"hello": "world"}')
            await still_works_and_absent(None)

            # 5. oversized event (~100 KB content, properly signed).
            ev = sign(keys, 1, "x" * 100_000)
            assert ev.get("sig") and ns.Event.from_json(json.dumps(ev)).verify()
            await expect_refused(ev, "invalid:")

            # 6. too many filters in one REQ.
            await relay.send(["REQ", "many", *[{"kinds": [1], "limit": 1} for _ in range(50)]])
            msg = await relay.recv()
            assert msg[0] == "CLOSED" and msg[1] == "many", f"expected CLOSED for 50 filters, got {short(msg)}"
            assert isinstance(msg[2], str) and msg[2].startswith("error:"), msg
            await still_works_and_absent(None)

            # 7. too many tags (3000, properly signed, well under the size limit).
            ev = sign(keys, 1, "many tags", tags=[["t", f"t{i}"] for i in range(3000)])
            assert len(json.dumps(ev, separators=(",", ":"))) < 64 * 1024, "tag test must not hit the size limit"
            await expect_refused(ev, "invalid:")

            # 8. an event by someone other than the owner.
            ev = sign(ns.Keys.generate(), 1, "stranger")
            await expect_refused(ev, "blocked:")

            # Nothing of the above got in; the good event is still the only kind-1 event.
            assert await relay.req({"kinds": [1]}) == [good]
            # And the connection still takes a valid event.
            last = sign(keys, 1, "still works at the end")
            ok = await relay.publish(last)
            assert ok[2] is True, ok
            assert await relay.req({"ids": [last["id"]]}) == [last]
        finally:
            await relay.close()
    run(body())


def test_duplicate_event_is_acknowledged_once_stored(node):
    """NIP-01: re-sending a stored event is not an error; OK true with 'duplicate:' or plain true."""
    async def body():
        relay = await RawRelay.open(node.url)
        try:
            ev = sign(node.owner.keys, 1, "twice")
            assert (await relay.publish(ev))[2] is True
            again = await relay.publish(ev)
            assert again[2] is True, f"re-sent event refused: {again}"
            assert again[3] == "" or again[3].startswith("duplicate:"), again
            assert await relay.req({"ids": [ev["id"]]}) == [ev]
        finally:
            await relay.close()
    run(body())


def test_limits_are_exact_at_the_boundary(node):
    """The defaults (10 filters, 2000 tags, 64 KiB of event JSON) refuse just past the limit
    and accept at it, and NIP-11 advertises the limits it enforces."""
    keys = node.owner.keys

    async def body():
        relay = await RawRelay.open(node.url)
        try:
            # Filters: 10 is fine, 11 is CLOSED.
            stored = sign(keys, 1, "boundary")
            assert (await relay.publish(stored))[2] is True
            assert await relay.req(*[{"kinds": [1], "limit": 5} for _ in range(10)]) == [stored]
            await relay.send(["REQ", "eleven", *[{"kinds": [1]} for _ in range(11)]])
            msg = await relay.recv()
            assert msg[0] == "CLOSED" and msg[1] == "eleven" and msg[2].startswith("error:"), msg

            # Tags: 2000 accepted, 2001 refused.
            ok_tags = sign(keys, 1, "2000 tags", tags=[["t", f"t{i}"] for i in range(2000)])
            assert (await relay.publish(ok_tags))[2] is True
            assert await relay.req({"ids": [ok_tags["id"]]}) == [ok_tags]
            too_many = sign(keys, 1, "2001 tags", tags=[["t", f"t{i}"] for i in range(2001)])
            ok = await relay.publish(too_many)
            assert ok[2] is False and ok[3].startswith("invalid:"), ok

            # Size: ~60 KB of event JSON accepted, ~70 KB refused.
            big_ok = sign(keys, 1, "a" * 60_000)
            assert (await relay.publish(big_ok))[2] is True
            assert await relay.req({"ids": [big_ok["id"]]}) == [big_ok]
            too_big = sign(keys, 1, "b" * 70_000)
            ok = await relay.publish(too_big)
            assert ok[2] is False and ok[3].startswith("invalid:"), ok
            assert await relay.req({"ids": [too_many["id"], too_big["id"]]}) == []
        finally:
            await relay.close()
    run(body())

    resp = http_request(node.http, "/", method="GET", headers={"Accept": "application/nostr+json"})
    lim = json.loads(resp.body).get("limitation", {})
    assert lim.get("max_filters") == 10, lim
    assert lim.get("max_event_tags") == 2000, lim
    assert lim.get("restricted_writes") is True, lim

"""NIP-01 kind ranges and NIP-09 by address, over a raw WebSocket: ephemeral, replaceable
(10000-19999), addressable (30000-39999, per d tag), deletion by `a` tag, and the
created_at upper limit that NIP-11 advertises."""

from __future__ import annotations

import json
import time

from starling_harness import RawRelay, has_nip01_prefix, http_request, run, short, sign


def test_kind_ranges_and_address_deletion(node):
    k, me = node.owner.keys, node.owner.hex
    now = int(time.time())

    async def body():
        reader = await RawRelay.open(node.url)
        writer = await RawRelay.open(node.url)
        try:
            # Ephemeral: delivered live, never stored.
            await reader.send(["REQ", "eph", {"kinds": [20001]}])
            assert await reader.recv() == ["EOSE", "eph"]
            eph = sign(k, 20001, "ephemeral")
            assert (await writer.publish(eph))[2] is True
            got = await reader.recv()
            assert got == ["EVENT", "eph", eph], short(got)
            await reader.send(["CLOSE", "eph"])
            assert await writer.req({"ids": [eph["id"]]}) == [], "ephemeral event was stored"

            # Replaceable range 10000-19999.
            r1 = sign(k, 10002, "", tags=[["r", "ws://one.test"]], created_at=now - 20)
            r2 = sign(k, 10002, "", tags=[["r", "ws://two.test"]], created_at=now - 10)
            for ev in (r1, r2):
                assert (await writer.publish(ev))[2] is True
            assert await writer.req({"kinds": [10002], "authors": [me]}) == [r2]

            # Addressable range 30000-39999: replaced per (kind, pubkey, d).
            a1 = sign(k, 30023, "article v1", tags=[["d", "post"]], created_at=now - 20)
            a2 = sign(k, 30023, "article v2", tags=[["d", "post"]], created_at=now - 10)
            other = sign(k, 30023, "another article", tags=[["d", "other"]], created_at=now - 15)
            for ev in (a1, a2, other):
                assert (await writer.publish(ev))[2] is True
            got = await writer.req({"kinds": [30023], "authors": [me]})
            assert sorted(e["id"] for e in got) == sorted([a2["id"], other["id"]])
            assert await writer.req({"kinds": [30023], "#d": ["post"]}) == [a2]

            # NIP-09 by address: deletes versions up to the deletion's created_at.
            deletion = sign(k, 5, "", tags=[["a", f"30023:{me}:post"], ["k", "30023"]], created_at=now - 5)
            assert (await writer.publish(deletion))[2] is True
            assert await writer.req({"kinds": [30023], "authors": [me]}) == [other]
            assert await writer.req({"ids": [deletion["id"]]}) == [deletion]
        finally:
            await writer.close()
            await reader.close()
    run(body())


def test_created_at_upper_limit_matches_nip11(node):
    resp = http_request(node.http, "/", method="GET", headers={"Accept": "application/nostr+json"})
    limit = json.loads(resp.body).get("limitation", {}).get("created_at_upper_limit")
    assert isinstance(limit, int) and limit > 0, f"no created_at_upper_limit in NIP-11: {resp.body[:300]!r}"

    async def body():
        relay = await RawRelay.open(node.url)
        try:
            now = int(time.time())
            near = sign(node.owner.keys, 1, "a little ahead", created_at=now + limit // 2)
            assert (await relay.publish(near))[2] is True
            far = sign(node.owner.keys, 1, "too far ahead", created_at=now + limit + 600)
            ok = await relay.publish(far)
            assert ok[2] is False and ok[3].startswith("invalid:") and has_nip01_prefix(ok[3]), ok
            assert await relay.req({"ids": [far["id"]]}) == []
            old = sign(node.owner.keys, 1, "from 2001", created_at=1_000_000_000)
            assert (await relay.publish(old))[2] is True, "an old created_at must be accepted"
        finally:
            await relay.close()
    run(body())

"""NIP-42 on the node's relay and the gift wraps (NIP-59, kind 1059) it guards: only a
connection authenticated as the owner may publish a gift wrap or read one, and only those
addressed to the owner; unauthenticated REQs for kind 1059 get nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import nostr_sdk as ns

from starling_harness import RawRelay, run, sign


async def authenticate(relay: RawRelay, keys: ns.Keys, url: str, challenge: str) -> list:
    auth = sign(keys, 22242, "", tags=[["relay", url], ["challenge", challenge]])
    await relay.send(["AUTH", auth])
    ok = await relay.recv()
    assert ok[0] == "OK" and ok[1] == auth["id"], ok
    return ok


async def req_until_closed_or_eose(relay: RawRelay, sid: str, *filters: dict) -> tuple[list, list]:
    """REQ; returns (other messages before the end, the ending message)."""
    await relay.send(["REQ", sid, *filters])
    seen = []
    for _ in range(1000):
        msg = await relay.recv()
        if msg[0] in ("EOSE", "CLOSED") and msg[1] == sid:
            return seen, msg
        seen.append(msg)
    raise AssertionError("no end of the subscription")


def test_gift_wraps_need_the_owners_auth(node):
    async def body():
        owner = node.owner.keys
        stranger = ns.Keys.generate()
        now = int(time.time())
        wrap_to_owner = sign(ns.Keys.generate(), 1059, "sealed for the owner",
                             tags=[["p", node.owner.hex]], created_at=now - 10)
        wrap_to_other = sign(ns.Keys.generate(), 1059, "sealed for someone else",
                             tags=[["p", stranger.public_key().to_hex()]], created_at=now - 9)
        note = sign(owner, 1, "a public note", created_at=now - 8)

        anon = await RawRelay.open(node.url)
        try:
            # A gift wrap before AUTH: refused with auth-required, and the challenge comes.
            await anon.send(["EVENT", wrap_to_owner])
            msgs = [await anon.recv(), await anon.recv()]
            oks = [m for m in msgs if m[0] == "OK"]
            auths = [m for m in msgs if m[0] == "AUTH"]
            assert len(oks) == 1 and oks[0][2] is False and oks[0][3].startswith("auth-required:"), msgs
            assert len(auths) == 1 and isinstance(auths[0][1], str) and auths[0][1], msgs
            ok = await anon.publish(note)
            assert ok[2] is True, ok
        finally:
            await anon.close()

        # The owner authenticates and publishes both wraps (a client sends wraps to others too).
        mine = await RawRelay.open(node.url)
        try:
            await mine.send(["REQ", "w0", {"kinds": [1059]}])
            first = await mine.recv()
            assert first[0] == "AUTH", first
            closed = await mine.recv()
            assert closed[0] == "CLOSED" and closed[2].startswith("auth-required:"), closed
            ok = await authenticate(mine, owner, node.url, first[1])
            assert ok[2] is True, ok
            for wrap in (wrap_to_owner, wrap_to_other):
                ok = await mine.publish(wrap)
                assert ok[2] is True, ok
            got = await mine.req({"kinds": [1059]})
            assert [e["id"] for e in got] == [wrap_to_owner["id"]], got
            everything = await mine.req({})
            ids = {e["id"] for e in everything}
            assert wrap_to_owner["id"] in ids and wrap_to_other["id"] not in ids, ids
        finally:
            await mine.close()

        # Unauthenticated: kind 1059 by name is closed with auth-required; a kind-less REQ
        # returns everything but the wraps.
        anon = await RawRelay.open(node.url)
        try:
            before, end = await req_until_closed_or_eose(anon, "w1", {"kinds": [1059]})
            assert end[0] == "CLOSED" and end[2].startswith("auth-required:"), end
            assert not [m for m in before if m[0] == "EVENT"], before
            got = await anon.req({})
            ids = {e["id"] for e in got}
            assert note["id"] in ids, ids
            assert wrap_to_owner["id"] not in ids and wrap_to_other["id"] not in ids, ids
            got = await anon.req({"#p": [node.owner.hex]})
            assert wrap_to_owner["id"] not in {e["id"] for e in got}, got
        finally:
            await anon.close()

        # Authenticated as someone else: still nothing.
        other = await RawRelay.open(node.url)
        try:
            await other.send(["REQ", "w2", {"kinds": [1059]}])
            challenge = await other.recv()
            assert challenge[0] == "AUTH", challenge
            await other.recv()  # CLOSED auth-required
            ok = await authenticate(other, stranger, node.url, challenge[1])
            assert ok[2] is True, ok
            before, end = await req_until_closed_or_eose(other, "w3", {"kinds": [1059]})
            assert end[0] == "CLOSED" and end[2].startswith("auth-required:"), end
            assert not [m for m in before if m[0] == "EVENT"], before
        finally:
            await other.close()

        # A wrong challenge does not authenticate.
        bad = await RawRelay.open(node.url)
        try:
            await bad.send(["REQ", "w4", {"kinds": [1059]}])
            await bad.recv()
            await bad.recv()
            ok = await authenticate(bad, owner, node.url, "not-the-challenge")
            assert ok[2] is False and ok[3].startswith("invalid:"), ok
        finally:
            await bad.close()

    run(body())


def test_nostr_sdk_client_authenticates_and_reads_its_wraps(node):
    """rust-nostr's client answers the relay's challenge by itself (NIP-42) and then reads
    the gift wraps addressed to its owner."""
    async def body():
        now = int(time.time())
        wrap = sign(ns.Keys.generate(), 1059, "sealed", tags=[["p", node.owner.hex]],
                    created_at=now - 5)
        relay = await RawRelay.open(node.url)
        try:
            await relay.send(["REQ", "a", {"kinds": [1059]}])
            challenge = await relay.recv()
            await relay.recv()
            assert (await authenticate(relay, node.owner.keys, node.url, challenge[1]))[2] is True
            assert (await relay.publish(wrap))[2] is True
        finally:
            await relay.close()

        # The authenticator calls the keys back from Rust threads: tell the bindings which
        # asyncio loop to use (reset at the end).
        ns.uniffi_set_event_loop(asyncio.get_running_loop())
        authenticator = ns.SignerAuthenticator(node.owner.keys)
        client = ns.ClientBuilder().authenticator(authenticator).build()
        rurl = ns.RelayUrl.parse(node.url)
        await client.add_relay(rurl)
        await client.connect()
        try:
            f = ns.Filter().kind(ns.Kind(1059)).pubkey(node.owner.keys.public_key())
            got = []
            for _ in range(5):
                events = await client.fetch_events(ns.ReqTarget.single(rurl, [f]),
                                                   timeout=timedelta(seconds=3))
                got = [e.id().to_hex() for e in events]
                if got:
                    break
            assert got == [wrap["id"]], got
        finally:
            await client.disconnect()
            ns.uniffi_set_event_loop(None)

    run(body())

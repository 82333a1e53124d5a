"""NIP-77 negentropy sync against starling with the rust-nostr Python bindings' own client
(nostr-sdk's `Client.sync`): the client and the node each hold events the other lacks."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import nostr_sdk as ns

from starling_harness import RawRelay, query, run, sign

TIMEOUT = timedelta(seconds=10)


def ids(items) -> set[str]:
    return {i.to_hex() for i in items}


async def connected_client(node, held=()):
    """nostr-sdk's client with an LMDB database holding `held`, connected to the node.

    The default client only tracks ids it has seen; sync needs a database that keeps
    events. The bindings call that database back from Rust threads, which need to be told
    which asyncio loop to use (nostr-sdk's `uniffi_set_event_loop`); the caller resets it
    to None when done."""
    ns.uniffi_set_event_loop(asyncio.get_running_loop())
    db = await ns.NostrLmdb.open(str(node.tmp / "client-lmdb"))
    client = ns.ClientBuilder().database(db).build()
    for ev in held:
        await db.save_event(ns.Event.from_json(json.dumps(ev)))
    rurl = ns.RelayUrl.parse(node.url)
    await client.add_relay(rurl)
    out = await client.try_connect(TIMEOUT)
    assert [str(u) for u in out.success] == [str(rurl)], out
    return client, db, rurl


def test_nostr_sdk_sync_reconciles_both_ways(node):
    async def body():
        now = int(time.time())
        owner = node.owner.keys
        notes = [sign(owner, 1, f"note {i}", created_at=now - 100 + i) for i in range(20)]
        shared, node_only, client_only = notes[:8], notes[8:13], notes[13:]
        # On the node but outside the filter, and on the node but deleted: neither is in the set.
        reaction = sign(owner, 7, "+", tags=[["e", shared[0]["id"]], ["p", node.owner.hex]])
        deleted = sign(owner, 1, "deleted", created_at=now - 50)
        deletion = sign(owner, 5, "", tags=[["e", deleted["id"]]], created_at=now - 40)

        relay = await RawRelay.open(node.url)
        try:
            for ev in [*shared, *node_only, reaction, deleted, deletion]:
                ok = await relay.publish(ev)
                assert ok[2] is True, ok
        finally:
            await relay.close()

        client, db, rurl = await connected_client(node, [*shared, *client_only])
        try:
            filt = ns.Filter().author(owner.public_key()).kind(ns.Kind(1))
            want_local = {e["id"] for e in client_only}
            want_remote = {e["id"] for e in node_only}

            # A dry run only reconciles: the difference, nothing moved.
            dry = await client.sync(filt, opts=ns.SyncOptions().direction(ns.SyncDirection.BOTH).dry_run())
            assert [str(u) for u in dry.success] == [str(rurl)] and dry.failed == {}, dry
            assert ids(dry.report.local) == want_local, "ids only the client holds (have)"
            assert set(ids(dry.report.remote.keys())) == want_remote, "ids only the node holds (need)"
            assert dry.report.sent == {} and dry.report.received == {}, dry.report

            out = await client.sync(filt, opts=ns.SyncOptions().direction(ns.SyncDirection.BOTH))
            assert [str(u) for u in out.success] == [str(rurl)] and out.failed == {}, out
            rep = out.report
            assert ids(rep.local) == want_local
            assert ids(rep.remote.keys()) == want_remote
            assert ids(rep.received.keys()) == want_remote, "the client fetched what it lacked"
            assert ids(rep.sent.keys()) == want_local, "the client sent what the node lacked"
            assert all(f == [] for f in rep.send_failures.values()), rep.send_failures

            all_ids = {e["id"] for e in notes}
            in_client = {e.id().to_hex() for e in await db.query(filt)}
            assert in_client == all_ids, "the client's database holds the node's events"
            on_node = await query(node.url, {"authors": [node.owner.hex], "kinds": [1]})
            assert {e["id"] for e in on_node} == all_ids, "the node holds the client's events"

            again = await client.sync(filt, opts=ns.SyncOptions().direction(ns.SyncDirection.BOTH))
            assert again.report.local == [] and again.report.remote == {}, again.report
        finally:
            await client.shutdown()
            ns.uniffi_set_event_loop(None)
    run(body())


def test_nostr_sdk_sync_of_a_set_larger_than_one_frame(node):
    """2,500 ids are more than the node puts in one 64 KiB negentropy frame: the node cuts
    its answer and the client needs further rounds, which nostr-sdk must follow to the end."""
    async def body():
        now = int(time.time())
        owner = node.owner.keys
        notes = [sign(owner, 1, f"bulk {i}", created_at=now - 5_000 + i) for i in range(2_500)]
        relay = await RawRelay.open(node.url)
        try:
            for ev in notes:  # pipelined: all EVENTs first, then their OKs
                await relay.send(["EVENT", ev])
            oks = [await relay.recv() for _ in notes]
            assert all(ok[0] == "OK" and ok[2] is True for ok in oks), [ok for ok in oks if ok[2] is not True][:3]
        finally:
            await relay.close()

        client, db, rurl = await connected_client(node)
        try:
            filt = ns.Filter().author(owner.public_key()).kind(ns.Kind(1))
            out = await client.sync(filt, opts=ns.SyncOptions().direction(ns.SyncDirection.DOWN))
            assert [str(u) for u in out.success] == [str(rurl)] and out.failed == {}, out
            want = {e["id"] for e in notes}
            assert ids(out.report.remote.keys()) == want
            assert ids(out.report.received.keys()) == want
            assert out.report.local == [] and out.report.sent == {}
            assert {e.id().to_hex() for e in await db.query(filt)} == want
        finally:
            await client.shutdown()
            ns.uniffi_set_event_loop(None)
    run(body(), timeout=100)

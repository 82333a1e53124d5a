"""Live delivery on raw NIP-01 subscriptions: what arrives after EOSE, and what must not."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

from starling_harness import RawRelay, run, short, sign


def test_close_ends_live_delivery_and_non_matching_events_are_not_sent(node):
    keys = node.owner.keys

    async def body():
        reader = await RawRelay.open(node.url)
        writer = await RawRelay.open(node.url)
        try:
            await reader.send(["REQ", "live", {"kinds": [1], "authors": [node.owner.hex]}])
            assert await reader.recv() == ["EOSE", "live"]

            reaction = sign(keys, 7, "+")  # does not match the subscription
            assert (await writer.publish(reaction))[2] is True
            note = sign(keys, 1, "matches")
            assert (await writer.publish(note))[2] is True
            first = await reader.recv()
            assert first == ["EVENT", "live", note], f"first live message is not the matching note: {short(first)}"

            await reader.send(["CLOSE", "live"])
            # A round trip on the same connection makes sure the CLOSE was processed.
            assert await reader.req({"ids": [note["id"]]}) == [note]
            after = sign(keys, 1, "after CLOSE")
            assert (await writer.publish(after))[2] is True
            assert await reader.req({"ids": [after["id"]]}) == [after]
            await asyncio.sleep(0.3)
            assert await reader.req({"ids": [reaction["id"]]}) == [reaction]
            sent_after_close = [m for m in reader.late if m[1] == "live"]
            assert sent_after_close == [], f"messages on the closed subscription: {short(sent_after_close)}"
        finally:
            await writer.close()
            await reader.close()
    run(body())


def test_event_acknowledged_before_req_is_delivered_exactly_once(node):
    """Publish (wait for OK true), then REQ that event by id; keep the subscription open
    20 ms after its EOSE, CLOSE it; repeat on one connection. Each subscription must get
    exactly ["EVENT", sid, ev] then ["EOSE", sid]: an event that was already stored (and
    acknowledged) when the REQ came must not be sent again as a 'live' event after EOSE."""
    keys = node.owner.keys
    rounds = 150
    # Alternate small and large (~60 KB) events; all signed before the clock starts.
    events = [sign(keys, 1, ("x" * 60_000 if i % 2 else "small ") + str(i)) for i in range(rounds)]

    async def body():
        relay = await RawRelay.open(node.url)
        ws = relay.ws
        oks: asyncio.Queue = asyncio.Queue()
        per_sid: dict[str, list] = defaultdict(list)
        eose: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

        async def reader():
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == "OK":
                    oks.put_nowait(msg)
                elif msg[0] == "EVENT":
                    per_sid[msg[1]].append(("EVENT", msg[2]["id"]))
                elif msg[0] in ("EOSE", "CLOSED"):
                    per_sid[msg[1]].append((msg[0],))
                    eose[msg[1]].set()
                else:
                    per_sid["?"].append(tuple(map(str, msg)))

        task = asyncio.create_task(reader())
        try:
            for i, ev in enumerate(events):
                await ws.send(json.dumps(["EVENT", ev]))
                ok = await asyncio.wait_for(oks.get(), 10)
                assert ok[1] == ev["id"] and ok[2] is True, short(ok)
                sid = f"s{i}"
                await ws.send(json.dumps(["REQ", sid, {"ids": [ev["id"]]}]))
                await asyncio.wait_for(eose[sid].wait(), 10)
                await asyncio.sleep(0.02)
                await ws.send(json.dumps(["CLOSE", sid]))
            await asyncio.sleep(0.3)
        finally:
            await relay.close()
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

        bad = {}
        for i, ev in enumerate(events):
            got = per_sid.get(f"s{i}", [])
            if got != [("EVENT", ev["id"]), ("EOSE",)]:
                bad[f"s{i}"] = [(m[0], m[1][:8]) if len(m) > 1 else m for m in got]
        assert "?" not in per_sid, short(per_sid["?"])
        assert not bad, (f"{len(bad)} of {rounds} subscriptions did not get exactly [EVENT, EOSE] "
                         f"(event id prefixes shown): " + short(dict(list(bad.items())[:5]), 600))
    run(body())

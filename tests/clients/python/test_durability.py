"""kill -9 durability: every event the node acknowledged with OK true survives SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

import websockets

from starling_harness import REPORT_LINES, RawRelay, publish_ok, query, run, sign

TRIALS = 3
WINDOW = 400            # events in flight (sent, not yet answered) at most
PRESIGNED = 15_000      # events signed ahead of each trial; more are signed on the fly
MAX_EVENTS = 200_000    # per trial, a hard bound on the loop
CHUNK = 100             # ids per verification REQ


async def flood_then_kill(node, trial: int, kill_after: float) -> tuple[dict, list, int]:
    """Publish owner-signed events pipelined as fast as possible; SIGKILL the node after
    kill_after seconds. Returns (acked id -> event, refusals, number sent)."""
    keys = node.owner.keys
    relay = await RawRelay.open(node.url)
    ws = relay.ws
    sent: dict[str, dict] = {}
    acked: dict[str, dict] = {}
    refused: list = []
    window = asyncio.Semaphore(WINDOW)
    stop = asyncio.Event()

    # Signed before the clock starts, so the node, not Python's signing, sets the pace.
    presigned = [sign(keys, 1, f"durability trial {trial} seq {i}") for i in range(PRESIGNED)]

    async def sender():
        seq = 0
        while not stop.is_set() and seq < MAX_EVENTS:
            if seq < len(presigned):
                batch = presigned[seq:seq + 100]
            else:
                batch = [sign(keys, 1, f"durability trial {trial} seq {seq + i}") for i in range(25)]
            seq += len(batch)
            for ev in batch:
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(window.acquire(), 0.5)
                        break
                    except asyncio.TimeoutError:
                        continue
                if stop.is_set():
                    return
                sent[ev["id"]] = ev
                try:
                    await ws.send(json.dumps(["EVENT", ev]))
                except websockets.ConnectionClosed:
                    return

    async def receiver():
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] == "OK":
                    window.release()
                    if msg[2] is True:
                        assert msg[1] in sent, f"OK for an id never sent: {msg}"
                        acked[msg[1]] = sent[msg[1]]
                    else:
                        refused.append(msg)
        except websockets.ConnectionClosed:
            pass

    async def killer():
        await asyncio.sleep(kill_after)
        await asyncio.to_thread(node.node.kill9)
        stop.set()

    send_task = asyncio.create_task(sender())
    recv_task = asyncio.create_task(receiver())
    await killer()
    # After SIGKILL the socket closes; the receiver has read every OK the node sent.
    await asyncio.wait_for(recv_task, 10)
    send_task.cancel()
    try:
        await send_task
    except asyncio.CancelledError:
        pass
    return acked, refused, len(sent)


async def missing_after_restart(url: str, acked: dict) -> list[str]:
    relay = await RawRelay.open(url)
    missing: list[str] = []
    try:
        ids = sorted(acked)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            got = await relay.req({"ids": chunk, "limit": len(chunk)}, timeout=20)
            by_id = {e["id"]: e for e in got}
            assert set(by_id) <= set(chunk), "REQ by ids returned other events"
            for eid in chunk:
                if eid not in by_id:
                    missing.append(eid)
                else:
                    assert by_id[eid] == acked[eid], f"event {eid} changed across the crash"
    finally:
        await relay.close()
    return missing


def test_kill9_keeps_every_acknowledged_event(node):
    seed = int(os.environ.get("STARLING_DURABILITY_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    all_acked: dict[str, dict] = {}
    lines = []

    # Replacement and deletion state must survive the crashes too.
    now = int(time.time())
    k = node.owner.keys
    old0 = sign(k, 0, json.dumps({"name": "before"}), created_at=now - 50)
    new0 = sign(k, 0, json.dumps({"name": "after"}), created_at=now - 40)
    target = sign(k, 1, "deleted before the crashes", created_at=now - 30)
    deletion = sign(k, 5, "", tags=[["e", target["id"]]], created_at=now - 20)
    for ev in (old0, new0, target, deletion):
        run(publish_ok(node.url, ev))

    async def state_intact():
        assert await query(node.url, {"kinds": [0], "authors": [node.owner.hex]}) == [new0]
        assert await query(node.url, {"ids": [old0["id"], target["id"]]}) == []
        assert await query(node.url, {"ids": [deletion["id"]]}) == [deletion]

    for trial in range(TRIALS):
        kill_after = rng.uniform(0.5, 2.0)
        acked, refused, n_sent = run(flood_then_kill(node, trial, kill_after), timeout=60)
        assert acked, f"trial {trial}: no event was acknowledged in {kill_after:.2f}s ({n_sent} sent, " \
                      f"refusals: {refused[:3]})"
        all_acked.update(acked)
        node.node.start()  # same data dir, after SIGKILL
        missing = run(missing_after_restart(node.url, all_acked), timeout=120)
        run(state_intact())
        line = (f"durability trial {trial}: killed after {kill_after:.2f}s, sent {n_sent}, "
                f"acknowledged {len(acked)}, refused {len(refused)}"
                + (f" (first: {refused[0]})" if refused else "")
                + f", missing after restart {len(missing)} of {len(all_acked)} acknowledged so far")
        lines.append(line)
        print(line)
        assert not missing, (f"seed {seed}: {len(missing)} acknowledged events lost after kill -9 "
                             f"(e.g. {missing[:5]})\n" + "\n".join(lines))
    REPORT_LINES.append(f"kill -9 durability (seed {seed}): {len(all_acked)} acknowledged events over "
                        f"{TRIALS} trials, all present after restart")
    REPORT_LINES.extend("  " + ln for ln in lines)

"""kill -9 during ingest: several clients publish at once (pipelined over the relay
WebSocket, and one over NostrP2P's POST /publish) and the node is SIGKILLed at a random
moment, TRIALS times on the same data directory. After every kill, before the restart, the
node's databases pass SQLite's integrity_check (read-only, as the crash left them) and the
event table matches its totals row; the node then starts, and every event it had answered
with OK true (or HTTP 200) is there, unchanged. Replacement and deletion state from before
the first crash survives all of them.

STARLING_DURABILITY_SEED fixes the kill times; STARLING_KILL_TRIALS changes the count."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.error

import pytest
import websockets

from starling_harness import (REPORT_LINES, FLUTTER_HEADERS, RawRelay, check_store_files,
                              http_request, publish_ok, query, run, sign)

TRIALS = int(os.environ.get("STARLING_KILL_TRIALS", "20"))
WS_CLIENTS = 3          # relay connections publishing at once
WINDOW = 150            # events in flight per connection (sent, not yet answered) at most
SIGN_BATCH = 20         # events signed at a time between sends
MAX_EVENTS = 20_000     # per connection and trial, a hard bound on the loop
KILL_AFTER = (0.0, 1.2) # seconds from the first acknowledgement to the SIGKILL
CHUNK = 1000            # ids per verification REQ


class Trial:
    """What one trial's clients sent and what the node acknowledged."""

    def __init__(self, number: int):
        self.number = number
        self.sent = 0
        self.acked: dict[str, dict] = {}
        self.acked_rest = 0
        self.refused: list = []
        self.first_ack = asyncio.Event()
        self.stop = asyncio.Event()

    def ack(self, ev: dict) -> None:
        self.acked[ev["id"]] = ev
        self.first_ack.set()


async def ws_client(url: str, keys, trial: Trial, client: int) -> None:
    """Publishes pipelined over one connection until the trial stops or the node dies."""
    relay = await RawRelay.open(url)
    ws = relay.ws
    sent: dict[str, dict] = {}
    window = asyncio.Semaphore(WINDOW)

    async def sender():
        seq = 0
        while not trial.stop.is_set() and seq < MAX_EVENTS:
            batch = [sign(keys, 1, f"kill trial {trial.number} client {client} seq {seq + i}")
                     for i in range(SIGN_BATCH)]
            seq += len(batch)
            for ev in batch:
                while not trial.stop.is_set():
                    try:
                        await asyncio.wait_for(window.acquire(), 0.5)
                        break
                    except asyncio.TimeoutError:
                        continue
                if trial.stop.is_set():
                    return
                sent[ev["id"]] = ev
                trial.sent += 1
                try:
                    await ws.send(json.dumps(["EVENT", ev]))
                except websockets.ConnectionClosed:
                    return
            await asyncio.sleep(0)  # let the receiver run between batches

    async def receiver():
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg[0] != "OK":
                    continue
                window.release()
                if msg[2] is True:
                    assert msg[1] in sent, f"OK for an id never sent: {msg}"
                    trial.ack(sent[msg[1]])
                else:
                    trial.refused.append(msg)
        except websockets.ConnectionClosed:
            pass

    send_task = asyncio.create_task(sender())
    try:
        # After SIGKILL the socket closes: the receiver has then read every OK sent.
        await receiver()
    finally:
        send_task.cancel()
        try:
            await send_task
        except asyncio.CancelledError:
            pass


async def rest_client(http: str, keys, trial: Trial) -> None:
    """Publishes one event at a time over POST /publish until the trial stops or the node
    dies; an event counts as acknowledged only with HTTP 200 and Status SUCCESS."""
    seq = 0
    while not trial.stop.is_set() and seq < MAX_EVENTS:
        ev = sign(keys, 1, f"kill trial {trial.number} rest seq {seq}")
        seq += 1
        trial.sent += 1
        try:
            resp = await asyncio.to_thread(http_request, http, "/publish", "POST",
                                           json.dumps(ev).encode(), FLUTTER_HEADERS, 5)
        except (OSError, urllib.error.URLError):
            return  # the node is gone: this event was never acknowledged
        if resp.status == 200 and resp.json().get("Status") == "SUCCESS":
            trial.ack(ev)
            trial.acked_rest += 1
        else:
            trial.refused.append((resp.status, resp.body[:200]))


async def traffic_then_kill(node, trial: Trial, kill_after: float) -> None:
    keys = node.owner.keys
    clients = [asyncio.create_task(ws_client(node.url, keys, trial, c)) for c in range(WS_CLIENTS)]
    clients.append(asyncio.create_task(rest_client(node.http, keys, trial)))
    # The clock starts once traffic flows, so a slow machine still kills mid-traffic.
    await asyncio.wait_for(trial.first_ack.wait(), 20)
    await asyncio.sleep(kill_after)
    await asyncio.to_thread(node.node.kill9)
    trial.stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), 15)


async def missing_after_restart(url: str, acked: dict) -> list[str]:
    relay = await RawRelay.open(url)
    missing: list[str] = []
    try:
        ids = sorted(acked)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            got = await relay.req({"ids": chunk, "limit": len(chunk)}, timeout=30)
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


@pytest.mark.timeout(300)
def test_kill9_during_ingest_keeps_every_acknowledged_event(node):
    started = time.monotonic()
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

    for number in range(TRIALS):
        trial = Trial(number)
        kill_after = rng.uniform(*KILL_AFTER)
        run(traffic_then_kill(node, trial, kill_after), timeout=60)
        assert not trial.refused, f"trial {number}: the node refused events: {trial.refused[:3]}"
        stored = check_store_files(node.node.data_dir)  # as the crash left them
        all_acked.update(trial.acked)
        # The profile and the deletion besides the notes; more if a commit beat its OK.
        assert stored >= len(all_acked) + 2, f"{stored} events stored, {len(all_acked)} acknowledged"
        node.node.start()  # same data dir, after SIGKILL
        missing = run(missing_after_restart(node.url, trial.acked), timeout=120)
        run(state_intact())
        line = (f"ingest kill {number}: {kill_after:.2f}s into the traffic, sent {trial.sent}, "
                f"acknowledged {len(trial.acked)} ({trial.acked_rest} over REST), {stored} events in the "
                f"store at the kill, missing after restart {len(missing)}")
        lines.append(line)
        assert not missing, (f"seed {seed}: {len(missing)} acknowledged events lost after kill -9 "
                             f"(e.g. {missing[:5]})\n" + "\n".join(lines))

    # A later crash must not have lost what an earlier one kept.
    missing = run(missing_after_restart(node.url, all_acked), timeout=120)
    assert not missing, f"seed {seed}: {len(missing)} acknowledged events lost by the end"
    elapsed = time.monotonic() - started
    REPORT_LINES.append(f"kill -9 during ingest (seed {seed}): {len(all_acked)} acknowledged events "
                        f"over {TRIALS} kills, all present after every restart; integrity_check ok "
                        f"every time ({elapsed:.0f}s)")
    REPORT_LINES.extend("  " + ln for ln in lines)

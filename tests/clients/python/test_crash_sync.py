"""kill -9 during sync: node B follows A and is in A's home set (the only other node), so
A's posts reach B by home-set pushes, live follow pushes and negentropy catch-up after
each of B's restarts. A holds a backlog before B follows and keeps publishing throughout;
B is SIGKILLed at random moments, TRIALS times. After every kill B's databases pass
integrity_check (read-only, before the restart), B starts, and every event of A that B
returned for a REQ just before the kill is still there. At the end B converges to exactly
A's events.

STARLING_SYNC_SEED fixes the kill times; STARLING_KILL_TRIALS changes the count."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

from starling_harness import (REPORT_LINES, RawRelay, check_store_files, run, run_cli, sign,
                              start_networked)

TRIALS = int(os.environ.get("STARLING_KILL_TRIALS", "20"))
BACKLOG = 1500          # A's posts before B follows
PER_TRIAL = 120         # A's posts during each trial (in all at most 5000, a REQ's limit)
LIVE_BATCH = 20         # posts per publishing round
LIVE_PAUSE = 0.2        # seconds between rounds
KILL_AFTER = (0.3, 2.0) # seconds B runs before the SIGKILL
CONVERGE = 120          # seconds B gets to hold all of A's events at the end
CHUNK = 1000            # ids per verification REQ


async def publish_all(url: str, events: list[dict]) -> None:
    relay = await RawRelay.open(url)
    try:
        for ev in events:
            await relay.send(["EVENT", ev])
        for _ in events:
            msg = await relay.recv(30)
            assert msg[0] == "OK" and msg[2] is True, f"A refused its owner's event: {msg}"
    finally:
        await relay.close()


async def ids_of(url: str, author: str) -> set[str]:
    relay = await RawRelay.open(url)
    try:
        got = await relay.req({"authors": [author], "kinds": [1], "limit": 5000}, timeout=30)
        return {e["id"] for e in got}
    finally:
        await relay.close()


async def missing_on(url: str, ids: set[str]) -> list[str]:
    relay = await RawRelay.open(url)
    missing: list[str] = []
    try:
        ordered = sorted(ids)
        for i in range(0, len(ordered), CHUNK):
            chunk = ordered[i:i + CHUNK]
            got = {e["id"] for e in await relay.req({"ids": chunk, "limit": len(chunk)}, timeout=30)}
            missing.extend(eid for eid in chunk if eid not in got)
    finally:
        await relay.close()
    return missing


class Publisher(threading.Thread):
    """A's owner posting LIVE_BATCH notes every LIVE_PAUSE seconds on its own thread and
    event loop while the test kills B, PER_TRIAL for each trial the test starts (so every
    trial has traffic, however slow the machine)."""

    def __init__(self, url: str, keys):
        super().__init__(daemon=True)
        self.url, self.keys = url, keys
        self.stop = threading.Event()
        self.allowed = 0
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                n = min(LIVE_BATCH, self.allowed - self.published)
                if n > 0:
                    batch = [sign(self.keys, 1, f"live post {self.published + i}") for i in range(n)]
                    asyncio.run(asyncio.wait_for(publish_all(self.url, batch), 30))
                    self.published += n
                self.stop.wait(LIVE_PAUSE)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


@pytest.mark.timeout(420)
def test_kill9_during_sync_keeps_what_b_stored_and_converges(request, tmp_path):
    started = time.monotonic()
    seed = int(os.environ.get("STARLING_SYNC_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    a, a_owner = start_networked(tmp_path, "a", None)
    request.node._starling_nodes = [a]
    nodes = [a]
    publisher = None
    lines = []
    try:
        b, _ = start_networked(tmp_path, "b", a.p2p)
        request.node._starling_nodes = nodes = [a, b]
        now = int(time.time())
        backlog = [sign(a_owner.keys, 1, f"backlog post {i}", created_at=now - BACKLOG + i)
                   for i in range(BACKLOG)]
        run(publish_all(a.url, backlog), timeout=120)
        res = run_cli("follow", a_owner.npub, "--data-dir", str(b.data_dir), timeout=60)
        assert res.returncode == 0, f"starling follow failed: {res.stderr}"
        publisher = Publisher(a.url, a_owner.keys)
        publisher.start()

        held_before = 0
        for number in range(TRIALS):
            kill_after = rng.uniform(*KILL_AFTER)
            publisher.allowed += PER_TRIAL
            time.sleep(kill_after)
            # What B returns now is stored (committed): it must outlive the kill.
            seen = run(ids_of(b.url, a_owner.hex), timeout=60)
            b.kill9()
            stored = check_store_files(b.data_dir)
            b.start()
            missing = run(missing_on(b.url, seen), timeout=120)
            line = (f"sync kill {number}: after {kill_after:.2f}s, B held {len(seen)} of A's events "
                    f"(+{len(seen) - held_before}), {stored} in its store at the kill, A had posted "
                    f"{BACKLOG + publisher.published}; missing after restart {len(missing)}")
            lines.append(line)
            held_before = len(seen)
            assert not missing, (f"seed {seed}: B lost {len(missing)} events it had returned "
                                 f"before kill -9 (e.g. {missing[:5]})\n" + "\n".join(lines))
            assert publisher.error is None, f"A's publisher failed: {publisher.error!r}"
        assert held_before > 0, "B never received any of A's events while being killed"

        deadline = time.monotonic() + 60
        while publisher.published < publisher.allowed and publisher.error is None:
            assert time.monotonic() < deadline, "A's publisher did not finish"
            time.sleep(0.2)
        publisher.stop.set()
        publisher.join(60)
        assert publisher.error is None, f"A's publisher failed: {publisher.error!r}"
        assert publisher.published == TRIALS * PER_TRIAL
        on_a = run(ids_of(a.url, a_owner.hex), timeout=60)
        assert len(on_a) == BACKLOG + publisher.published, "A does not hold all its own posts"
        converge_start = time.monotonic()
        on_b: set[str] = set()
        while time.monotonic() - converge_start < CONVERGE:
            on_b = run(ids_of(b.url, a_owner.hex), timeout=60)
            if on_b >= on_a:
                break
            time.sleep(1)
        converged = time.monotonic() - converge_start
        assert on_b == on_a, (f"B holds {len(on_b & on_a)} of A's {len(on_a)} events after "
                              f"{CONVERGE}s (and {len(on_b - on_a)} A does not)\n" + "\n".join(lines))
        b.stop()
        check_store_files(b.data_dir)
        elapsed = time.monotonic() - started
        REPORT_LINES.append(f"kill -9 during sync (seed {seed}): {TRIALS} kills of B, nothing B had "
                            f"returned was lost, integrity_check ok every time; B then held all "
                            f"{len(on_a)} of A's events {converged:.1f}s after the last restart "
                            f"({elapsed:.0f}s)")
        REPORT_LINES.extend("  " + ln for ln in lines)
    finally:
        if publisher is not None:
            publisher.stop.set()
            publisher.join(60)
        for n in reversed(nodes):
            try:
                n.stop()
            finally:
                n.kill9()

"""A full disk: the node's data directory is a small tmpfs (16 MiB, mounted by the test,
so root only) that also holds a filler file. Owner posts of about 48 KiB are published
until the disk is full. Then: refused posts get OK false with "error: storage full" (and
POST /publish HTTP 507 with the same words), not a raw SQLite message; the node stays up
and serves reads; its databases pass integrity_check. Once the filler is deleted and the
disk grown, posts are accepted again without a restart, and owner events that outbox.db
refused to queue while full (with these sizes it fills before events.db does) are queued.
Finally the node is restarted and every post it acknowledged is there."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from starling_harness import (REPORT_LINES, FLUTTER_HEADERS, RawRelay, StarlingNode,
                              check_store_files, http_request, init_node, keygen, run, sign)

SIZE = "16m"
GROWN = "32m"              # the size the disk is grown to after the filler is deleted
FILLER = 3 * 1024 * 1024   # bytes written beside the data dir, deleted to free space
BODY = 48 * 1024           # content bytes per post (the event limit is 64 KiB)
MAX_POSTS = 1000           # a hard bound: 16 MiB holds far fewer such posts
FULL_AFTER = 8             # consecutive refusals that mean "full"
AFTER_FREEING = 10         # posts that must be accepted once space is back

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="mounting a tmpfs needs root (CI runs as root)")


def note(keys, i: int) -> dict:
    # Different bytes per post, so nothing below SQLite can share or shrink them.
    body = (f"{i:08d}" + os.urandom(BODY // 2).hex())[:BODY]
    return sign(keys, 1, body)


async def publish(relay: RawRelay, ev: dict) -> tuple[bool, str]:
    ok = await relay.publish(ev, timeout=30)
    return ok[2], ok[3]


async def fill(url: str, keys, acked: dict, refusals: list) -> int:
    """Publishes until FULL_AFTER refusals in a row; returns how many were sent."""
    relay = await RawRelay.open(url)
    try:
        streak = 0
        for i in range(MAX_POSTS):
            ev = note(keys, i)
            accepted, message = await publish(relay, ev)
            if accepted:
                acked[ev["id"]] = ev
                streak = 0
            else:
                refusals.append(message)
                streak += 1
                if streak >= FULL_AFTER:
                    return i + 1
        raise AssertionError(f"{MAX_POSTS} posts of {BODY} bytes never filled a {SIZE} disk")
    finally:
        await relay.close()


async def missing(url: str, acked: dict) -> list[str]:
    relay = await RawRelay.open(url)
    try:
        ids = sorted(acked)
        got = {e["id"]: e for e in await relay.req({"ids": ids, "limit": len(ids)}, timeout=60)}
        for eid, ev in got.items():
            assert ev == acked[eid], f"event {eid} changed"
        return [eid for eid in ids if eid not in got]
    finally:
        await relay.close()


def outbox_event_ids(path: Path) -> set[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT DISTINCT event_id FROM outbox")}
    finally:
        con.close()


def disk_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.timeout(300)
def test_full_disk_refuses_writes_clearly_and_recovers(request, tmp_path):
    started = time.monotonic()
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mnt)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        # Root without the right to mount (a container without CAP_SYS_ADMIN).
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    node = None
    try:
        owner = keygen()
        data = mnt / "data"
        init_node(data, owner)
        filler = mnt / "filler"
        filler.write_bytes(os.urandom(FILLER))
        node = StarlingNode(data, tmp_path / "node.log")
        request.node._starling_nodes = [node]
        node.start()
        keys = owner.keys

        acked: dict[str, dict] = {}
        refusals: list[str] = []
        sent = run(fill(node.url, keys, acked, refusals), timeout=240)
        free_when_full = disk_free(mnt)
        assert acked, "nothing was accepted before the disk filled"
        for message in refusals:
            assert message.startswith("error: storage full"), f"unclear refusal: {message!r}"
            assert "sqlite" not in message.lower(), f"raw SQLite text in a refusal: {message!r}"

        # REST says the same, with 507 Insufficient Storage.
        ev = note(keys, 10_000)
        resp = http_request(node.http, "/publish", "POST", json.dumps(ev).encode(), FLUTTER_HEADERS, 30)
        assert resp.status == 507, (resp.status, resp.body[:300])
        assert b"storage full" in resp.body, resp.body[:300]

        # Still up, still serving reads; nothing acknowledged is missing; files intact.
        assert node.proc is not None and node.proc.poll() is None, "the node died on a full disk"
        assert run(missing(node.url, acked)) == []
        status = http_request(node.http, "/api/status", "GET")
        assert status.status == 200, status.body[:300]
        check_store_files(data)

        # Space returns (the filler goes, the disk grows): new posts are accepted again,
        # without a restart.
        filler.unlink()
        subprocess.run(["mount", "-o", f"remount,size={GROWN}", str(mnt)], check=True,
                       capture_output=True, timeout=30)
        after = [note(keys, 20_000 + i) for i in range(AFTER_FREEING)]

        async def publish_after():
            relay = await RawRelay.open(node.url)
            try:
                return [await publish(relay, ev) for ev in after]
            finally:
                await relay.close()

        freed = disk_free(mnt)
        results = run(publish_after(), timeout=120)
        assert all(ok for ok, _ in results), f"still refused after freeing space: {results}"
        acked.update({ev["id"]: ev for ev in after})
        log = node.log_path.read_text(errors="replace")
        assert "storage full: refusing writes" in log, "the node did not log the full disk"
        assert "writes resume" in log, "the node did not log that writes resumed"
        # outbox.db may have filled up too (it keeps a copy of each owner event for the
        # home set): what it refused is queued again once there is room, without a restart.
        requeued = "queued the owner's events that outbox.db refused before"
        deadline = time.monotonic() + 30
        outbox_refused = "cannot queue events for delivery" in log
        while outbox_refused and requeued not in node.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, "outbox.db never queued what it had refused"
            time.sleep(0.5)
        # The outbox takes the owner's events off the bus a few milliseconds after their OK
        # (it gathers them into one commit), so the last ones may still be on their way.
        deadline = time.monotonic() + 10
        while True:
            unqueued = set(acked) - outbox_event_ids(data / "outbox.db")
            if not unqueued or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        assert not unqueued, f"{len(unqueued)} acknowledged events never reached the outbox"

        # A clean stop, a restart on the same disk, and everything acknowledged is there.
        assert node.stop() == 0, "the node did not stop cleanly"
        check_store_files(data)
        node.start()
        lost = run(missing(node.url, acked), timeout=120)
        assert not lost, f"{len(lost)} acknowledged events lost (e.g. {lost[:3]})"
        elapsed = time.monotonic() - started
        REPORT_LINES.append(
            f"full disk ({SIZE} tmpfs, {BODY // 1024} KiB posts): {len(acked) - AFTER_FREEING} "
            f"accepted, then {len(refusals)} refused with 'error: storage full' "
            f"({sent} sent, {free_when_full // 1024} KiB left free); outbox.db refused "
            f"{log.count('cannot queue events for delivery')} times and queued them later; with "
            f"{freed // 1024} KiB free again all {AFTER_FREEING} new posts accepted without a "
            f"restart; all {len(acked)} present after a restart ({elapsed:.0f}s)")
    finally:
        if node is not None:
            try:
                node.stop()
            finally:
                node.kill9()
        res = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
        if res.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)

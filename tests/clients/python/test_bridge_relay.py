"""`starling bridge`, `export` and `import` against a real standard Nostr relay on loopback:
the Python `nostr-relay` package (sqlite storage in the test's temp dir, gunicorn on
127.0.0.1 with an OS-chosen port). Events must round-trip unchanged: same id, pubkey,
created_at, kind, tags, content and sig on the relay and back in a node.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from starling_harness import (
    StarlingNode, init_node, keygen, publish_ok, query, run, run_cli, sign, starling_bin,
)

LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")

RELAY_CONFIG = """\
DEBUG: false
relay_name: starling bridge test relay
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  validators:
    - nostr_relay.validators.is_signed
gunicorn:
  bind: 127.0.0.1:0
  workers: 1
  loglevel: info
  reload: false
authentication:
  enabled: false
max_limit: {max_limit}
"""


class NostrRelay:
    """One `nostr-relay serve` process (the package's own CLI, from this venv)."""

    def __init__(self, tmp: Path, max_limit: int = 6000):
        self.config = tmp / "relay.yaml"
        self.config.write_text(RELAY_CONFIG.format(db=tmp / "relay.sqlite3", max_limit=max_limit))
        self.log_path = tmp / "relay.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 45) -> "NostrRelay":
        exe = Path(sys.executable).parent / "nostr-relay"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(exe), "-c", str(self.config), "serve"],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log_path.read_text(errors="replace"))
            if m:
                self.url = f"ws://127.0.0.1:{m.group(1)}"
                run(query(self.url, {"limit": 1}), timeout=15)  # the worker answers
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"nostr-relay did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def relay(tmp_path):
    r = NostrRelay(tmp_path).start()
    try:
        yield r
    finally:
        r.stop()


def owner_events(keys) -> list[dict]:
    """Kinds and contents that a careless copy would change: escapes, unicode, tags."""
    now = int(time.time())
    return [
        sign(keys, 1, "plain note", created_at=now - 50),
        sign(keys, 1, 'quotes " \\ backslash\nnewline\ttab \u00e9\u4e2d\U0001F426 </script>',
             tags=[["t", "starling"], ["p", "0" * 64, "wss://relay.example", "mention"]],
             created_at=now - 40),
        sign(keys, 0, json.dumps({"name": "bridge test", "about": "caf\u00e9"}), created_at=now - 30),
        sign(keys, 7, "+", tags=[["e", "1" * 64], ["p", "2" * 64]], created_at=now - 20),
        sign(keys, 30023, "# long form\n\nbody", tags=[["d", "article-1"], ["title", "T"]],
             created_at=now - 10),
    ]


def bridge(data_dir: Path, relay_url: str, *flags: str) -> str:
    res = run_cli("bridge", "--data-dir", str(data_dir), "--relay", relay_url, *flags, timeout=60)
    assert res.returncode == 0, f"starling bridge failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def by_id(events: list[dict]) -> dict[str, dict]:
    return {e["id"]: e for e in events}


def start_node(tmp: Path, name: str, owner) -> StarlingNode:
    data_dir = tmp / f"{name}-data"
    init_node(data_dir, owner)
    return StarlingNode(data_dir, tmp / f"{name}.log").start()


def test_push_copies_the_owners_events_to_the_relay_unchanged(node, relay):
    events = owner_events(node.owner.keys)
    for ev in events:
        run(publish_ok(node.url, ev))
    out = bridge(node.node.data_dir, relay.url, "--push")
    assert f"push {relay.url}: 5 accepted, 0 duplicate, 0 rejected" in out, out
    on_relay = run(query(relay.url, {"authors": [node.owner.hex]}))
    assert by_id(on_relay) == by_id(events)

    again = bridge(node.node.data_dir, relay.url, "--push")
    assert f"push {relay.url}: 0 accepted, 5 duplicate, 0 rejected" in again, again
    assert len(run(query(relay.url, {"authors": [node.owner.hex]}))) == 5


def test_pull_brings_the_owners_relay_events_into_the_node_unchanged(node, relay):
    events = owner_events(node.owner.keys)
    for ev in events:
        run(publish_ok(relay.url, ev))
    stranger = sign(keygen().keys, 1, "not the owner's")
    run(publish_ok(relay.url, stranger))

    out = bridge(node.node.data_dir, relay.url, "--pull")
    assert "pull into the node: 5 fetched, 5 accepted, 0 duplicate, 0 rejected" in out, out
    in_node = run(query(node.url, {"authors": [node.owner.hex]}))
    assert by_id(in_node) == by_id(events)
    assert run(query(node.url, {"ids": [stranger["id"]]})) == []


def test_pull_pages_through_a_relay_that_caps_limit(node, tmp_path):
    """A relay that answers at most 2 events per REQ: the bridge pages with `until`."""
    capped = NostrRelay(tmp_path, max_limit=2).start()
    try:
        events = owner_events(node.owner.keys)
        for ev in events:
            run(publish_ok(capped.url, ev))
        assert len(run(query(capped.url, {"authors": [node.owner.hex]}))) == 2  # the cap holds
        out = bridge(node.node.data_dir, capped.url, "--pull")
    finally:
        capped.stop()
    assert "pull into the node: 5 fetched, 5 accepted, 0 duplicate, 0 rejected" in out, out
    assert by_id(run(query(node.url, {"authors": [node.owner.hex]}))) == by_id(events)


def test_export_import_round_trip_through_the_relay(node, relay, tmp_path):
    """Node A → relay (bridge push) → node B of the same owner (bridge pull): B's export is
    byte for byte A's, and importing it into a third node gives the same export again."""
    for ev in owner_events(node.owner.keys):
        run(publish_ok(node.url, ev))
    bridge(node.node.data_dir, relay.url, "--push")
    b = start_node(tmp_path, "b", node.owner)
    try:
        bridge(b.data_dir, relay.url)  # both directions: pulls 5, pushes 5 duplicates
        exported_a = run_cli("export", "--data-dir", str(node.node.data_dir)).stdout
        exported_b = run_cli("export", "--data-dir", str(b.data_dir)).stdout
    finally:
        b.stop()
    assert len(exported_a.splitlines()) == 5
    assert sorted(exported_b.splitlines()) == sorted(exported_a.splitlines())

    dump = tmp_path / "b.jsonl"
    dump.write_text(exported_b)
    c_dir = tmp_path / "c-data"
    init_node(c_dir, node.owner)
    imported = run_cli("import", "--data-dir", str(c_dir), str(dump))
    assert "5 stored, 0 already present, 0 refused" in imported.stdout, imported.stdout + imported.stderr
    exported_c = run_cli("export", "--data-dir", str(c_dir), "--out", str(tmp_path / "c.jsonl"))
    assert exported_c.returncode == 0, exported_c.stderr
    assert sorted((tmp_path / "c.jsonl").read_text().splitlines()) == sorted(exported_a.splitlines())


def wait_for(url: str, event_id: str, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = run(query(url, {"ids": [event_id]}))
        if got:
            return got
        time.sleep(0.2)
    return []


def test_follow_copies_new_events_both_ways_live(node, relay, tmp_path):
    log = open(tmp_path / "bridge.log", "wb")
    proc = subprocess.Popen([starling_bin(), "bridge", "--data-dir", str(node.node.data_dir),
                             "--relay", relay.url, "--follow"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        deadline = time.monotonic() + 20
        while b"following the owner's new events" not in (tmp_path / "bridge.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "bridge.log").read_text()
            assert time.monotonic() < deadline, "bridge --follow did not start"
            time.sleep(0.1)
        from_node = sign(node.owner.keys, 1, "posted on the node while bridged")
        run(publish_ok(node.url, from_node))
        # by id: a REQ racing with the relay's save may get the event both stored and live
        assert by_id(wait_for(relay.url, from_node["id"])) == by_id([from_node])
        from_relay = sign(node.owner.keys, 1, "posted on the relay while bridged")
        run(publish_ok(relay.url, from_relay))
        assert by_id(wait_for(node.url, from_relay["id"])) == by_id([from_relay])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise
    assert rc == 0, (tmp_path / "bridge.log").read_text()

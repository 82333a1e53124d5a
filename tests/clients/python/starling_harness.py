"""Harness for black-box tests of the real `starling` binary.

Starts nodes (`starling keygen` / `init` / `run --api 127.0.0.1:0`), signs events with the
rust-nostr Python bindings (nostr-sdk), talks raw NIP-01 over a WebSocket (`websockets`)
and the NostrP2P REST API over HTTP (urllib).  Every wait here has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import nostr_sdk as ns
from websockets.asyncio.client import connect as ws_connect

REPO_ROOT = Path(__file__).resolve().parents[3]
RELAY_LINE = re.compile(r"^\s*relay\s+(ws://\S+)")
P2P_LINE = re.compile(r"^\s*p2p\s+(/\S+)")

# Figures that tests want shown at the end of the run (e.g. durability counts).
REPORT_LINES: list[str] = []


def starling_bin() -> str:
    """Path of the binary under test: $STARLING_BIN or <repo>/target/debug/starling."""
    path = os.environ.get("STARLING_BIN") or str(REPO_ROOT / "target" / "debug" / "starling")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"starling binary not found or not executable: {path} "
                           "(build it with `cargo build -p starling` or set STARLING_BIN)")
    return path


# --------------------------------------------------------------------------- keys / CLI

@dataclass
class OwnerKeys:
    nsec: str
    npub: str
    hex: str
    keys: ns.Keys


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([starling_bin(), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def keygen() -> OwnerKeys:
    """`starling keygen` -> OwnerKeys; checks the three lines are consistent."""
    res = run_cli("keygen")
    assert res.returncode == 0, f"starling keygen failed: rc={res.returncode}\n{res.stderr}"
    found: dict[str, str] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^(nsec|npub|hex)\s+(\S+)\s*$", line)
        if m:
            assert m.group(1) not in found, f"duplicate {m.group(1)} line in keygen output:\n{res.stdout}"
            found[m.group(1)] = m.group(2)
    assert set(found) == {"nsec", "npub", "hex"}, f"keygen output lacks nsec/npub/hex lines:\n{res.stdout}"
    assert found["nsec"].startswith("nsec1"), found
    assert found["npub"].startswith("npub1"), found
    assert re.fullmatch(r"[0-9a-f]{64}", found["hex"]), found
    keys = ns.Keys.parse(found["nsec"])
    assert keys.public_key().to_bech32() == found["npub"], "keygen npub does not belong to its nsec"
    assert keys.public_key().to_hex() == found["hex"], "keygen hex does not belong to its nsec"
    return OwnerKeys(found["nsec"], found["npub"], found["hex"], keys)


def init_node(data_dir: Path, owner: OwnerKeys) -> None:
    res = run_cli("init", "--data-dir", str(data_dir), "--nsec", owner.nsec)
    assert res.returncode == 0, (f"starling init failed: rc={res.returncode}\n"
                                 f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")


# --------------------------------------------------------------------------- node process

class StarlingNode:
    """One `starling run` process on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: Iterable[str] = ()):
        self.data_dir = data_dir
        self.log_path = log_path
        # More `starling run` flags (e.g. --public, --bootstrap ADDR for a network of nodes).
        self.extra_args = list(extra_args)
        # The node's first p2p address with /p2p/PEER, from its banner (once started).
        self.p2p: str | None = None
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.stdout_lines: list[str] = []
        self._url_seen = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def http(self) -> str:
        assert self.url is not None
        return "http://" + self.url[len("ws://"):].rstrip("/")

    def start(self, timeout: float = 30) -> "StarlingNode":
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        self.url = None
        self.stdout_lines = []
        self._url_seen = threading.Event()
        log = open(self.log_path, "ab")
        log.write(f"\n===== starling run --data-dir {self.data_dir} ({time.strftime('%H:%M:%S')})\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [starling_bin(), "run", "--data-dir", str(self.data_dir), "--api", "127.0.0.1:0",
             "--listen", "/ip4/127.0.0.1/tcp/0", *self.extra_args],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            text=True, bufsize=1, env={**os.environ, "NO_COLOR": "1"})
        log.close()
        proc = self.proc
        seen = self._url_seen

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # ends when the process closes stdout
                self.stdout_lines.append(line.rstrip("\n"))
                p2p = P2P_LINE.match(line)
                if p2p and self.p2p is None:
                    self.p2p = p2p.group(1)
                m = RELAY_LINE.match(line)
                if m and not seen.is_set():
                    self.url = m.group(1).rstrip("/")
                    seen.set()

        self._reader = threading.Thread(target=read_stdout, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not seen.wait(0.05):
            if proc.poll() is not None:
                raise AssertionError(f"starling run exited with {proc.returncode} before printing "
                                     f"its relay line.\nstdout:\n" + "\n".join(self.stdout_lines)
                                     + "\nstderr tail:\n" + self.log_tail())
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError(f"no line matching {RELAY_LINE.pattern!r} on stdout within "
                                     f"{timeout}s.\nstdout:\n" + "\n".join(self.stdout_lines)
                                     + "\nstderr tail:\n" + self.log_tail())
        assert re.fullmatch(r"ws://127\.0\.0\.1:[1-9][0-9]*", self.url or ""), \
            f"relay URL is not ws://127.0.0.1:<real port>: {self.url!r}"
        return self

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._join_reader()
                raise AssertionError(f"starling did not exit within {timeout}s of SIGTERM")
        self._join_reader()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_networked(tmp_path: Path, name: str, bootstrap: str | None = None):
    """A fresh owner, `init`, and `run --public` (joining `bootstrap`, a p2p address, when
    given), waiting until the node prints its p2p address. Returns (node, owner)."""
    owner = keygen()
    data = tmp_path / f"{name}-data"
    init_node(data, owner)
    extra = ["--public"] + (["--bootstrap", bootstrap] if bootstrap else [])
    node = StarlingNode(data, tmp_path / f"{name}.log", extra_args=extra)
    node.start()
    deadline = time.monotonic() + 10
    while node.p2p is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node.p2p, f"{name} printed no p2p address"
    return node, owner


@dataclass
class NodeHandle:
    """What a test gets: the running node, its owner, and helpers bound to it."""
    node: StarlingNode
    owner: OwnerKeys
    tmp: Path
    extra_nodes: list = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.node.url
        return self.node.url

    @property
    def http(self) -> str:
        return self.node.http


# --------------------------------------------------------------------------- store files

def integrity_check(path: Path) -> str:
    """`PRAGMA integrity_check` on one SQLite file, opened read-only with Python's sqlite3
    (so this checks the file as the crash left it, WAL included); "ok" when intact."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return "\n".join(str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall())
    finally:
        con.close()


def check_store_files(data_dir: Path) -> int:
    """Asserts that the node's databases (events.db, and outbox.db when the node ran with
    the network) pass integrity_check and that events.db's running totals match its rows
    (they are written in the same transaction). Returns the number of stored events."""
    for name in ("events.db", "outbox.db"):
        path = data_dir / name
        if name == "events.db" or path.exists():
            assert path.exists(), f"{path} is missing"
            result = integrity_check(path)
            assert result == "ok", f"integrity_check of {path}: {result[:500]}"
    con = sqlite3.connect(f"file:{data_dir / 'events.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT count(*) FROM event").fetchone()[0]
        (total,) = con.execute("SELECT events FROM stats WHERE id = 0").fetchone()
    finally:
        con.close()
    assert rows == total, f"events.db holds {rows} events but its stats row says {total}"
    return rows


# --------------------------------------------------------------------------- events

def sign(keys: ns.Keys, kind: int, content: str, tags: Iterable[Iterable[str]] = (),
         created_at: int | None = None) -> dict:
    """Build and sign a NIP-01 event with nostr-sdk; returns it as a JSON dict."""
    tags = [list(t) for t in tags]
    builder = ns.EventBuilder(ns.Kind(kind), content).tags([ns.Tag.parse(t) for t in tags])
    if created_at is not None:
        builder = builder.custom_created_at(ns.Timestamp.from_secs(created_at))
    ev = json.loads(builder.finalize(keys).as_json())
    assert ev["tags"] == tags, f"nostr-sdk changed the tags: {tags} -> {ev['tags']}"
    return ev


def to_sdk_event(ev: dict) -> ns.Event:
    return ns.Event.from_json(json.dumps(ev))


def verify_event(ev: dict) -> bool:
    try:
        return to_sdk_event(ev).verify()
    except Exception:  # noqa: BLE001 - any parse failure means "not a valid event"
        return False


def tamper_hex(h: str, pos: int = 10) -> str:
    """Flip one hex digit (stays valid hex of the same length)."""
    c = h[pos]
    return h[:pos] + ("0" if c != "0" else "1") + h[pos + 1:]


# --------------------------------------------------------------------------- raw NIP-01

def short(x: Any, n: int = 300) -> str:
    """repr cut to n characters, for assertion messages (events can be 100 KB)."""
    r = repr(x)
    return r if len(r) <= n else r[:n] + f"...(+{len(r) - n} chars)"


class RawRelay:
    """A plain NIP-01 WebSocket connection (websockets), with bounded waits.

    Messages for a subscription this client has already CLOSEd (EVENT/EOSE/CLOSED that were
    in flight, or sent late) are not returned by recv(): they go to `late`, so a test can
    assert on them where that is its subject (see test_subscription_delivery.py)."""

    def __init__(self, ws):
        self.ws = ws
        self.closed_sids: set[str] = set()
        self.late: list[list] = []

    @classmethod
    async def open(cls, url: str) -> "RawRelay":
        ws = await ws_connect(url, open_timeout=10, close_timeout=2, ping_interval=None,
                              max_size=None, compression=None)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, msg: Any) -> None:
        if isinstance(msg, list) and len(msg) >= 2 and msg[0] == "CLOSE":
            self.closed_sids.add(msg[1])
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def recv(self, timeout: float = 10) -> list:
        deadline = time.monotonic() + timeout
        for _ in range(1_000_000):
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError()
            raw = await asyncio.wait_for(self.ws.recv(), left)
            msg = json.loads(raw)
            assert isinstance(msg, list) and msg and isinstance(msg[0], str), f"not a NIP-01 message: {raw[:300]}"
            if msg[0] in ("EVENT", "EOSE", "CLOSED") and len(msg) >= 2 and msg[1] in self.closed_sids:
                self.late.append(msg)
                continue
            return msg
        raise AssertionError("too many late messages")

    async def publish(self, ev: dict, timeout: float = 10) -> list:
        """Send ["EVENT", ev]; return the OK message for it (first message must be that OK)."""
        await self.send(["EVENT", ev])
        msg = await self.recv(timeout)
        assert msg[0] == "OK" and len(msg) == 4, f"expected OK for {ev.get('id')}, got {short(msg)}"
        assert msg[1] == ev.get("id"), f"OK for a different id: {short(msg)}"
        assert isinstance(msg[2], bool) and isinstance(msg[3], str), f"malformed OK: {short(msg)}"
        return msg

    async def req(self, *filters: dict, timeout: float = 10, max_events: int = 100_000) -> list[dict]:
        """REQ, collect events until EOSE, CLOSE. Any other message is an error."""
        sid = "q" + uuid.uuid4().hex[:12]
        await self.send(["REQ", sid, *filters])
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no EOSE for {sid} within {timeout}s ({len(events)} events so far)"
            msg = await self.recv(left)
            if msg[0] == "EVENT" and msg[1] == sid:
                events.append(msg[2])
                assert len(events) <= max_events, "too many events"
            elif msg[0] == "EOSE" and msg[1] == sid:
                break
            else:
                raise AssertionError(f"unexpected message while waiting for EOSE of {sid}: {short(msg)}")
        await self.send(["CLOSE", sid])
        return events


async def query(url: str, *filters: dict, timeout: float = 10) -> list[dict]:
    relay = await RawRelay.open(url)
    try:
        return await relay.req(*filters, timeout=timeout)
    finally:
        await relay.close()


async def publish_ok(url: str, ev: dict) -> None:
    relay = await RawRelay.open(url)
    try:
        ok = await relay.publish(ev)
        assert ok[2] is True, f"owner-signed event refused: {short(ok)}"
    finally:
        await relay.close()


def run(coro, timeout: float = 60):
    """Run one async test body with an overall timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# --------------------------------------------------------------------------- REST (NostrP2P)

@dataclass
class HttpResponse:
    status: int
    headers: dict  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(base: str, path: str, method: str = "POST", body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 10) -> HttpResponse:
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return HttpResponse(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


# The headers NostrP2P's Flutter client (flustr) sends with every POST: Dart's http package
# adds "; charset=utf-8" to the content type of a String body.
FLUTTER_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Private-Network": "true",
    "Accept-Encoding": "gzip, deflate",
}


def post_json(base: str, path: str, obj: Any, content_type: str | None = None) -> HttpResponse:
    """POST obj as JSON with the Flutter client's headers (or another Content-Type)."""
    headers = dict(FLUTTER_HEADERS)
    headers["Accept"] = "application/octet-stream" if path == "/req" else "application/json"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return http_request(base, path, "POST", json.dumps(obj).encode(), headers)


# NIP-01: "OK" false messages start with one of these machine-readable prefixes.
NIP01_OK_PREFIXES = ("duplicate", "pow", "blocked", "rate-limited", "invalid", "restricted", "mute", "error")


def has_nip01_prefix(reason: str) -> bool:
    return reason.split(":", 1)[0] in NIP01_OK_PREFIXES and ":" in reason


NP2P_EVENT_KEYS = {"Id", "Pubkey", "Created_at", "Kind", "Tags", "Content", "Sig"}

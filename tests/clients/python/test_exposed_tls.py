"""A node exposed beyond loopback: TLS and NIP-42 for other machines (issue 7, point 4).

Two network namespaces made by the test (stexp-<pid>-node, stexp-<pid>-client) are joined
by a veth pair with 10.78.0.1 (node) and 10.78.0.2 (client); nothing is added to the
host's own namespace and no other address is used. The node listens on 10.78.0.1 with a
certificate from `starling tls-cert`; the client runs in a thread that entered the
client namespace (setns(2) is per thread) and checks:

* wss:// works with the certificate trusted, and fails without trusting it; ws:// fails;
* an EVENT without AUTH gets the AUTH challenge and `OK false auth-required:`, and is not
  stored; AUTH as another key unlocks nothing; after AUTH as the owner it gets `OK true`;
* public REQs need no AUTH; a REQ for gift wraps gets `CLOSED auth-required:`;
* REST POST /publish needs the login token as a bearer token (401 without it); POST /req
  stays open; the owner-only status route answers 401.

A second node, with `insecure_plaintext = true` (as behind a TLS-terminating proxy),
checks that nostr-sdk (whose TLS trusts only the public CAs, so not a self-signed
certificate) is refused with `auth-required:` under a stranger's key and answers the AUTH
challenge and gets its event taken under the owner's.

These need root and `ip` (CI runs as root); skipped with the reason otherwise. A last
test, needing neither, checks that a non-loopback API address without TLS is refused at
start-up with an error that names what to configure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gzip
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgpack
import nostr_sdk as ns
import pytest
from websockets.asyncio.client import connect as ws_connect

from starling_harness import (REPORT_LINES, HttpResponse, RawRelay, init_node, keygen, run_cli,
                              sign, starling_bin)

NODE_IP = "10.78.0.1"
CLIENT_IP = "10.78.0.2"
PORT = 7443
URL = f"wss://{NODE_IP}:{PORT}"
PLAIN_URL = f"ws://{NODE_IP}:{PORT}"
BASE = f"https://{NODE_IP}:{PORT}"
CLONE_NEWNET = 0x40000000
STEP_TIMEOUT = 30.0
CONNECT_SAMPLES = 20


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run(list(args), capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    if check and cp.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({cp.returncode}): {cp.stderr.strip()}")
    return cp


class Namespaces:
    """The two namespaces and their veth pair; `close()` removes them and their processes."""

    def __init__(self) -> None:
        prefix = f"stexp-{os.getpid()}"
        self.node = f"{prefix}-node"
        self.client = f"{prefix}-client"
        self.made: list[str] = []

    def create(self) -> None:
        for ns_name in (self.node, self.client):
            sh("ip", "netns", "add", ns_name)
            self.made.append(ns_name)
            sh("ip", "-n", ns_name, "link", "set", "lo", "up")
        # Made inside the node namespace, its peer moved straight into the client's.
        sh("ip", "-n", self.node, "link", "add", "eth0", "type", "veth",
           "peer", "name", "eth0", "netns", self.client)
        for ns_name, ip in ((self.node, NODE_IP), (self.client, CLIENT_IP)):
            sh("ip", "-n", ns_name, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns_name, "link", "set", "eth0", "up")

    def close(self) -> None:
        for ns_name in reversed(self.made):
            pids = sh("ip", "netns", "pids", ns_name, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns_name, check=False)
        self.made.clear()


def in_namespace(ns_name: str, body, timeout: float = 90):
    """Runs the coroutine function `body` in a thread that entered `ns_name`; its result."""
    result: dict = {}

    def thread() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns into the client namespace failed")
            finally:
                os.close(fd)
            result["value"] = asyncio.run(asyncio.wait_for(body(), timeout))
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = err

    t = threading.Thread(target=thread, name=f"in-{ns_name}", daemon=True)
    t.start()
    t.join(timeout + 10)
    assert not t.is_alive(), f"the client in {ns_name} did not finish within {timeout}s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def cannot_run_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2)"
    probe = f"stexp-{os.getpid()}-probe"
    cp = sh("ip", "netns", "add", probe, check=False)
    if cp.returncode != 0:
        return f"cannot create a network namespace: {cp.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


@contextlib.contextmanager
def exposed(tmp_path: Path, tls: bool):
    """A node in its own namespace on 10.78.0.1:7443, over TLS (a `starling tls-cert`
    certificate) or, with `tls` false, plain text as behind a TLS-terminating proxy
    (`insecure_plaintext = true`). Yields (owner, data dir, namespaces)."""
    reason = cannot_run_reason()
    if reason:
        pytest.skip(reason)
    owner = keygen()
    data_dir = tmp_path / "exposed-data"
    init_node(data_dir, owner)
    config = data_dir / "config.toml"
    text = config.read_text()
    assert "\n[api]\n" in text and "\ninsecure_plaintext = false\n" in text, text
    if tls:
        made = run_cli("tls-cert", "--data-dir", str(data_dir), "--host", NODE_IP)
        assert made.returncode == 0, made.stderr
        fingerprint = re.search(r"sha256\s+([0-9A-F:]{95})", made.stdout)
        assert fingerprint, made.stdout
        text = text.replace("\n[api]\n", '\n[api]\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n', 1)
    else:
        text = text.replace("\ninsecure_plaintext = false\n", "\ninsecure_plaintext = true\n", 1)
    config.write_text(text)

    nets = Namespaces()
    proc = None
    log = open(tmp_path / "exposed.log", "wb")
    try:
        nets.create()
        proc = subprocess.Popen(
            ["ip", "netns", "exec", nets.node, starling_bin(), "run", "--data-dir", str(data_dir),
             "--api", f"{NODE_IP}:{PORT}", "--offline"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, bufsize=1,
            env={**os.environ, "NO_COLOR": "1"})
        banner = wait_for_banner(proc, tmp_path / "exposed.log")
        if tls:
            assert f"relay   {URL}" in banner, banner
            assert f"certificate sha256 {fingerprint.group(1)}" in banner, banner
        else:
            assert f"relay   {PLAIN_URL}" in banner, banner
        assert "publish only after NIP-42 AUTH" in banner, banner
        yield owner, data_dir, nets
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        nets.close()


@pytest.fixture
def exposed_node(tmp_path):
    with exposed(tmp_path, tls=True) as node:
        yield node


@pytest.fixture
def proxied_node(tmp_path):
    with exposed(tmp_path, tls=False) as node:
        yield node


def wait_for_banner(proc: subprocess.Popen, log_path: Path) -> str:
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                done.set()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(STEP_TIMEOUT) or proc.poll() is not None:
        raise AssertionError("the exposed node did not start:\n" + "\n".join(lines)
                             + "\n" + log_path.read_text(errors="replace")[-3000:])
    return "\n".join(lines)


def trusting(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


async def open_wss(ctx: ssl.SSLContext) -> RawRelay:
    ws = await ws_connect(URL, ssl=ctx, open_timeout=10, close_timeout=2, ping_interval=None,
                          max_size=None, compression=None)
    return RawRelay(ws)


async def authenticate(relay: RawRelay, keys: ns.Keys, challenge: str) -> list:
    auth = sign(keys, 22242, "", tags=[["relay", URL], ["challenge", challenge]])
    await relay.send(["AUTH", auth])
    ok = await relay.recv()
    assert ok[0] == "OK" and ok[1] == auth["id"], ok
    return ok


def test_an_exposed_node_serves_tls_and_takes_writes_only_after_auth(exposed_node):
    owner, data_dir, nets = exposed_node
    ctx = trusting(data_dir / "tls" / "cert.pem")
    token = (data_dir / "web.token").read_text().strip()
    stranger = ns.Keys.generate()
    now = int(time.time())
    note = sign(owner.keys, 1, "posted from another machine", created_at=now - 5)

    async def client() -> None:
        # TLS is real: untrusted, the certificate is refused; plain ws:// gets no relay.
        with pytest.raises(ssl.SSLCertVerificationError):
            await ws_connect(URL, ssl=ssl.create_default_context(), open_timeout=10)
        with pytest.raises(Exception) as plain:
            ws = await ws_connect(f"ws://{NODE_IP}:{PORT}", open_timeout=10)
            await ws.close()
        assert not isinstance(plain.value, AssertionError), plain.value

        anon = await open_wss(ctx)
        try:
            await anon.send(["EVENT", note])
            first, second = await anon.recv(), await anon.recv()
            assert first[0] == "AUTH" and isinstance(first[1], str) and first[1], first
            assert second[:3] == ["OK", note["id"], False], second
            assert second[3].startswith("auth-required:"), second
            assert await anon.req({"ids": [note["id"]]}) == [], "refused, so not stored"

            ok = await authenticate(anon, stranger, first[1])
            assert ok[2] is True, ok
            refused = await anon.publish(note)
            assert refused[2] is False and refused[3].startswith("auth-required:"), refused

            ok = await authenticate(anon, owner.keys, first[1])
            assert ok[2] is True, ok
            accepted = await anon.publish(note)
            assert accepted[2] is True, accepted
        finally:
            await anon.close()

        # A figure for the report: wss:// connection set-up (TCP, TLS 1.3, upgrade).
        setups = []
        for _ in range(CONNECT_SAMPLES):
            start = time.perf_counter()
            relay = await open_wss(ctx)
            setups.append(time.perf_counter() - start)
            await relay.close()
        setups.sort()
        REPORT_LINES.append(
            f"exposed node, wss:// set-up across a veth pair: median {setups[len(setups) // 2] * 1000:.1f} ms, "
            f"max {setups[-1] * 1000:.1f} ms over {len(setups)} connections (debug build)")

        reader = await open_wss(ctx)
        try:
            got = await reader.req({"authors": [owner.hex]})
            assert [e["id"] for e in got] == [note["id"]], got
            await reader.send(["REQ", "wraps", {"kinds": [1059]}])
            msgs = [await reader.recv(), await reader.recv()]
            closed = [m for m in msgs if m[0] == "CLOSED"]
            assert closed and closed[0][1] == "wraps" and closed[0][2].startswith("auth-required:"), msgs
        finally:
            await reader.close()

    in_namespace(nets.client, client)

    rest_note = sign(owner.keys, 1, "over REST from another machine", created_at=now - 4)

    def https(path: str, method: str = "GET", body: dict | None = None, headers: dict | None = None):
        req = urllib.request.Request(BASE + path, method=method, headers=headers or {},
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
                return HttpResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return HttpResponse(err.code, dict(err.headers), err.read())

    async def rest() -> dict:
        as_json = {"Content-Type": "application/json"}
        return {
            "no_token": https("/publish", "POST", rest_note, as_json),
            "wrong_token": https("/publish", "POST", rest_note, {**as_json, "Authorization": "Bearer wrong"}),
            "token": https("/publish", "POST", rest_note, {**as_json, "Authorization": f"Bearer {token}"}),
            "req": https("/req", "POST", {"ids": [rest_note["id"]], "authors": [owner.hex], "kinds": [1]},
                         as_json),
            "status": https("/api/status"),
        }

    answers = in_namespace(nets.client, rest)
    assert answers["no_token"].status == 401, answers["no_token"]
    assert answers["no_token"].json()["Error"].startswith("auth-required:"), answers["no_token"].body
    assert answers["wrong_token"].status == 401, answers["wrong_token"]
    assert answers["token"].status == 200 and answers["token"].json() == {"Status": "SUCCESS"}, answers["token"]
    assert answers["req"].status == 200, answers["req"]
    evts = msgpack.unpackb(gzip.decompress(answers["req"].body), raw=False)["Evts"]
    assert [e["Id"].hex() for e in evts] == [rest_note["id"]], evts
    assert answers["status"].status == 401, answers["status"]


def test_a_non_loopback_api_without_tls_is_refused_at_start(tmp_path):
    owner = keygen()
    data_dir = tmp_path / "refused-data"
    init_node(data_dir, owner)
    # 192.0.2.1 (documentation range): the check comes before any socket is opened.
    res = run_cli("run", "--data-dir", str(data_dir), "--api", "192.0.2.1:7443", "--offline",
                  timeout=30)
    assert res.returncode != 0, res.stdout
    err = res.stderr
    assert "192.0.2.1:7443 is not a loopback address" in err, err
    assert "tls_cert" in err and "tls_key" in err and "insecure_plaintext" in err, err
    assert "starling tls-cert" in err, err
    assert "node running" not in res.stdout, res.stdout


def sdk_send(nets: Namespaces, url: str, signer: ns.Keys, event: dict) -> dict:
    """nostr-sdk, with `signer` as its NIP-42 authenticator, sends `event` from the client
    namespace (exposed_sdk_client.py); its answer."""
    script = Path(__file__).with_name("exposed_sdk_client.py")
    cp = subprocess.run(
        ["ip", "netns", "exec", nets.client, sys.executable, str(script), url,
         signer.secret_key().to_bech32(), json.dumps(event)],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    lines = [line for line in cp.stdout.splitlines() if line.startswith("{")]
    assert cp.returncode == 0 and lines, \
        f"no answer from nostr-sdk (exit {cp.returncode}): {cp.stdout}\n{cp.stderr[-2000:]}"
    return json.loads(lines[-1])


def test_nostr_sdk_authenticates_when_asked_behind_a_proxy(proxied_node):
    """insecure_plaintext (a TLS-terminating proxy in front): ws:// on 10.78.0.1, and the
    same rule: nostr-sdk with a stranger's key is refused with auth-required; with the
    owner's key it answers the AUTH challenge and its event is taken."""
    owner, data_dir, nets = proxied_node
    note = sign(owner.keys, 1, "nostr-sdk from another machine", created_at=int(time.time()) - 5)
    refused = sdk_send(nets, PLAIN_URL, ns.Keys.generate(), note)
    assert refused.get("success") == [], refused
    reasons = list(refused.get("failed", {}).values())
    assert len(reasons) == 1 and reasons[0].startswith("auth-required:"), refused
    taken = sdk_send(nets, PLAIN_URL, owner.keys, note)
    assert taken == {"success": [PLAIN_URL], "failed": {}}, taken

    async def check() -> list:
        ws = await ws_connect(PLAIN_URL, open_timeout=10, close_timeout=2)
        relay = RawRelay(ws)
        try:
            return await relay.req({"ids": [note["id"]]})
        finally:
            await relay.close()

    assert [e["id"] for e in in_namespace(nets.client, check)] == [note["id"]]

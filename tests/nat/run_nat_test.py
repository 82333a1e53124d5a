#!/usr/bin/env python3
"""starling NAT integration test: network namespaces + nftables, no outside address.

    sudo python3 tests/nat/run_nat_test.py [--bin target/debug/starling] [--keep]
                                           [--scenario moderate|symmetric|all]

Topology (all inside network namespaces named stnat-<pid>-<role>; nothing is added to
the host's own namespace, and no address outside these namespaces is ever used):

    stnat-*-p  (P: public bootstrap + relay node, 10.77.0.10)
        | eth0
    stnat-*-inet  (bridge br0: the "internet" segment 10.77.0.0/24)
        | wan 10.77.0.1                         | wan 10.77.0.2
    stnat-*-r1  (NAT router)               stnat-*-r2  (NAT router)
        | lan 192.168.71.1                      | lan 192.168.72.1
    stnat-*-h1  (H1, 192.168.71.10)        stnat-*-h2  (H2, 192.168.72.10)

Each router masquerades its LAN behind its WAN address and drops unsolicited WAN packets
in its input and forward chains (see /work/shared/DESIGN.md "Testing the network on one
machine"):
  * moderate  -- `snat to <wan ip>` (Linux keeps the source port: endpoint-independent,
                 hole punching should work: DCUtR must give H1 and H2 a direct connection);
  * symmetric -- `masquerade random` (a new random port per flow: hole punching cannot
                 work, the post must still arrive through the relay P).

In each scenario H1's owner follows H2's owner, H2's owner posts, and the test waits for
the post in H1's timeline; then H1's owner sends H2's owner a private message (NIP-17),
which H2 must read, and whose text no file of P, H1 or H2 may contain. It reports the delivery latency and the path (direct or
relayed): the connections H1 and H2 list in their status API (`starling status --json`,
`.network.peers`: path and address), the path H2's pusher logged, and -- as ground truth,
independent of the node's bookkeeping -- the bytes H2's router forwarded during the
delivery to H1's router (direct) or to P (relayed), from nft counters. A status entry
labelled "direct" whose address has no IP part (`/p2p/<peer>`, the far end of an inbound
relayed circuit) is reported as mislabelled and not counted as a direct connection.

Exit status: 0 when every required outcome holds (moderate: delivered and a direct H1-H2
connection; symmetric: delivered; both: the private message read and its text in no file), 1 when one fails, 2 when the test cannot run (no
binary, no nft/ip, not root, no netns), 77 instead of 2 with --skip-if-unprivileged when
not root or not permitted to create network namespaces, 130 when interrupted.

Python 3.11 standard library only. Every wait is bounded; namespaces and processes are
always torn down (also on Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "stnat-"
P_IP = "10.77.0.10"
P2P_PORT = 4001
API = "127.0.0.1:7777"  # per namespace: each namespace has its own loopback
STEP_TIMEOUT = 60.0  # longest single wait
ROUTERS = {
    # role: (wan ip, lan router ip, host ip, lan prefix)
    "1": ("10.77.0.1", "192.168.71.1", "192.168.71.10", 24),
    "2": ("10.77.0.2", "192.168.72.1", "192.168.72.10", 24),
}
SCENARIOS = {
    "moderate": 'oifname "wan" snat to {wan}',
    "symmetric": 'oifname "wan" masquerade random',
}
# Log lines worth showing in the report (stderr of the nodes).
INTERESTING = re.compile(
    r"relay circuit reserved|reserving a relay circuit|relaying for a NATed peer|"
    r"hole punched|hole punching failed|subscribed at the author|external address confirmed|"
    r"reachable at this address|pushed to follower|push to follower failed|"
    r"cannot listen through the relay|a listener closed|DHT mode changed|ERROR|WARN|panicked"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TestError(Exception):
    """A step failed; the message says which and why."""


class NodeDied(TestError):
    """A node process exited: no point waiting any longer."""


class CannotRun(Exception):
    """The environment cannot run the test: CannotRun(reason, skippable)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], *, check: bool = True, timeout: float = 30.0, stdin: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                            env=env)
    except subprocess.TimeoutExpired as e:
        raise TestError(f"command timed out after {timeout:.0f}s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise TestError(
            f"command failed ({cp.returncode}): {' '.join(cmd)}\n{cp.stdout}{cp.stderr}".rstrip()
        )
    return cp


def wait_for(what: str, probe, timeout: float = STEP_TIMEOUT, interval: float = 0.25):
    """Calls probe() until it returns something truthy; raises TestError after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except NodeDied:
            raise
        except TestError as e:  # a client command may fail while a node starts
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise TestError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# Namespaces and nftables


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_netns() -> list[str]:
    cp = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def remove_stale_namespaces() -> None:
    """Deletes stnat-<pid>-* namespaces left by a run whose process is gone (e.g. SIGKILL)."""
    for ns in list_netns():
        m = re.fullmatch(rf"{PREFIX}(\d+)-\w+", ns)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            log(f"removing stale namespace {ns} (its test run is gone)")
            kill_netns_pids(ns)
            run(["ip", "netns", "del", ns], check=False)


def kill_netns_pids(ns: str) -> None:
    cp = run(["ip", "netns", "pids", ns], check=False)
    for pid in cp.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Net:
    """The namespaces of one scenario."""

    def __init__(self, tag: str):
        self.tag = tag
        self.created: list[str] = []

    def ns(self, role: str) -> str:
        return f"{PREFIX}{os.getpid()}-{self.tag}{role}"

    def ip(self, role: str, *args: str) -> None:
        run(["ip", "-n", self.ns(role), *args])

    def exec(self, role: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.ns(role), *args], **kw)

    def add(self, role: str) -> None:
        name = self.ns(role)
        run(["ip", "netns", "add", name])
        self.created.append(name)
        self.ip(role, "link", "set", "lo", "up")

    def veth(self, a: str, a_if: str, b: str, b_if: str) -> None:
        # Created inside namespace a with its peer directly in namespace b: no interface
        # ever appears in the host's namespace.
        self.ip(a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", self.ns(b))
        self.ip(a, "link", "set", a_if, "up")
        self.ip(b, "link", "set", b_if, "up")

    def build(self, nat_rule: str) -> None:
        for role in ("inet", "p", "r1", "r2", "h1", "h2"):
            self.add(role)
        self.ip("inet", "link", "add", "br0", "type", "bridge")
        self.ip("inet", "link", "set", "br0", "up")
        # P on the internet segment.
        self.veth("p", "eth0", "inet", "p")
        self.ip("inet", "link", "set", "p", "master", "br0")
        self.ip("p", "addr", "add", f"{P_IP}/24", "dev", "eth0")
        for n, (wan, lan_gw, host, plen) in ROUTERS.items():
            r, h = f"r{n}", f"h{n}"
            self.veth(r, "wan", "inet", r)
            self.ip("inet", "link", "set", r, "master", "br0")
            self.ip(r, "addr", "add", f"{wan}/24", "dev", "wan")
            self.veth(r, "lan", h, "eth0")
            self.ip(r, "addr", "add", f"{lan_gw}/{plen}", "dev", "lan")
            self.ip(h, "addr", "add", f"{host}/{plen}", "dev", "eth0")
            self.ip(h, "route", "add", "default", "via", lan_gw)
            # (no sysctl binary needed: /proc/sys/net is the namespace's own)
            self.exec(r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
            other_wan = ROUTERS["2" if n == "1" else "1"][0]
            ruleset = f"""
table ip stnat {{
    # Bytes the host behind this router sends to the other router (a direct, hole-punched
    # connection) and to P (the relay path): the ground truth of which path a push took.
    counter to_peer {{}}
    counter to_relay {{}}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        {nat_rule.format(wan=wan)}
    }}
    # Unsolicited packets from the WAN are dropped in input as well as forward: an
    # accepted (and RST-answered) SYN would leave a conntrack entry that collides with
    # the host's later outbound flow and breaks hole punching.
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "lan" ip daddr {other_wan} counter name "to_peer"
        iifname "lan" ip daddr {P_IP} counter name "to_relay"
        iifname "wan" ct state established,related accept
        iifname "wan" drop
    }}
}}
"""
            self.exec(r, "nft", "-f", "-", stdin=ruleset)

    def counter(self, role: str, name: str) -> int:
        """Bytes counted so far by the named nft counter of a router."""
        cp = self.exec(role, "nft", "-j", "list", "counter", "ip", "stnat", name)
        for item in json.loads(cp.stdout).get("nftables", []):
            if "counter" in item:
                return int(item["counter"]["bytes"])
        raise TestError(f"no counter {name} in {self.ns(role)}")

    def teardown(self) -> None:
        for name in reversed(self.created):
            kill_netns_pids(name)
            run(["ip", "netns", "del", name], check=False)
        self.created.clear()


# ---------------------------------------------------------------------------------------
# Nodes


@dataclass
class Node:
    name: str
    role: str  # namespace role
    data: Path
    proc: subprocess.Popen | None = None
    out: Path | None = None
    err: Path | None = None
    peer_id: str = ""
    npub: str = ""
    addr: str = ""
    extra: dict = field(default_factory=dict)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out and self.out.exists() else ""

    def stderr(self) -> str:
        if not self.err or not self.err.exists():
            return ""
        return ANSI.sub("", self.err.read_text(errors="replace"))


class Scenario:
    def __init__(self, name: str, binary: Path, root: Path, rust_log: str):
        self.name = name
        self.bin = str(binary)
        self.root = root / name
        self.root.mkdir(parents=True)
        self.net = Net(name[:3])
        self.rust_log = rust_log
        self.nodes: list[Node] = []
        self.report: dict = {"scenario": name}

    # -- processes

    def start(self, node: Node, args: list[str]) -> None:
        node.out = self.root / f"{node.name}.stdout"
        node.err = self.root / f"{node.name}.stderr"
        env = dict(os.environ, RUST_LOG=self.rust_log, NO_COLOR="1")
        env.pop("STARLING_DATA_DIR", None)
        with open(node.out, "wb") as out, open(node.err, "wb") as err:
            node.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.net.ns(node.role), self.bin, *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                start_new_session=True,
            )
        self.nodes.append(node)

    def stop_all(self) -> None:
        for node in self.nodes:
            p = node.proc
            if p and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for node in self.nodes:
            p = node.proc
            if not p:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)

    def alive(self, node: Node) -> None:
        if node.proc and node.proc.poll() is not None:
            raise NodeDied(
                f"{node.name} exited with status {node.proc.returncode}\n"
                + tail(node.stderr(), 30)
            )

    def banner(self, node: Node, key: str) -> str:
        """Waits for the banner line `  <key>   value` on the node's stdout."""
        def probe():
            self.alive(node)
            for line in node.stdout().splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == key:
                    return line.split(None, 1)[1]
            return None
        return wait_for(f"{node.name}'s '{key}' banner line", probe, timeout=30)

    # -- client commands (inside the node's namespace)

    def cli(self, node: Node, *args: str, timeout: float = 20.0) -> str:
        self.alive(node)
        cp = self.net.exec(node.role, self.bin, *args, "--api", API, timeout=timeout)
        return cp.stdout

    def status(self, node: Node) -> dict:
        out = self.cli(node, "status", "--json")
        try:
            st = json.loads(out.strip().splitlines()[-1])
            st["network"]["reachability"]
            return st
        except (ValueError, IndexError, KeyError, TypeError) as e:
            raise TestError(f"unexpected `starling status --json` output from {node.name}: "
                            f"{out[:300]!r} ({e!r})") from e

    def conns(self, node: Node, other: Node) -> list[dict]:
        """node's connections to other from its status API: [{path, addr}]."""
        net = self.status(node).get("network") or {}
        return [{"path": p.get("path"), "addr": p.get("addr", "")}
                for p in net.get("peers", []) if p.get("peer") == other.peer_id]

    def paths_between(self, node: Node, other: Node) -> list[str]:
        return sorted({c["path"] for c in self.conns(node, other)})

    # -- the scenario

    def run(self) -> dict:
        rep = self.report
        t0 = time.monotonic()
        log(f"=== scenario {self.name}: NAT rule `{SCENARIOS[self.name]}` ===")
        self.net.build(SCENARIOS[self.name])
        log("namespaces: " + " ".join(self.net.created))

        p = Node("P", "p", self.root / "P")
        h1 = Node("H1", "h1", self.root / "H1")
        h2 = Node("H2", "h2", self.root / "H2")

        self.start(p, ["bootstrap", "--data-dir", str(p.data),
                       "--listen", f"/ip4/{P_IP}/tcp/{P2P_PORT}"])
        line = self.banner(p, "p2p")
        p.addr = next((a for a in line.split() if "/p2p/" in a), "")
        if not p.addr:
            raise TestError(f"P printed no dialable p2p address: {line!r}")
        p.peer_id = p.addr.rsplit("/p2p/", 1)[1]
        log(f"P (bootstrap + relay) at {p.addr}")

        for h, n in ((h1, "1"), (h2, "2")):
            out = run([self.bin, "init", "--data-dir", str(h.data)]).stdout
            m = re.search(r"\bnpub1[0-9a-z]+", out)
            if not m:
                raise TestError(f"no npub in `starling init` output: {out!r}")
            h.npub = m.group(0)
            host = ROUTERS[n][2]
            self.start(h, ["run", "--data-dir", str(h.data), "--api", API,
                           "--listen", f"/ip4/{host}/tcp/{P2P_PORT}", "--bootstrap", p.addr])
        for h in (h1, h2):
            line = self.banner(h, "p2p")
            h.peer_id = line.split("/p2p/")[-1].split()[0] if "/p2p/" in line else line.split()[0]
            log(f"{h.name} behind NAT: peer {h.peer_id}, owner {h.npub}")

        # 1. Both NATed nodes find they are not reachable and reserve a circuit at P.
        for h in (h1, h2):
            t = time.monotonic()
            st = wait_for(f"{h.name} to hold a relay circuit (reachability 'relayed')",
                          lambda h=h: (lambda s: s if s["network"]["reachability"] == "relayed"
                                       else None)(self.status(h)))
            net = st["network"]
            rep[f"{h.name}_reachability"] = net["reachability"]
            rep[f"{h.name}_advertised"] = net.get("advertised_addrs", [])
            log(f"{h.name} reachability={net['reachability']} after {time.monotonic() - t:.1f}s "
                f"more; external={net.get('external_addrs')} advertised={net.get('advertised_addrs')}")

        # 2. H2's home record in the DHT names its relayed address.
        def whereis_circuit():
            out = self.cli(h1, "whereis", h2.npub, "--json")
            return out if "p2p-circuit" in out else None
        rec = wait_for("H2's home record with its relayed address (whereis from H1)",
                       whereis_circuit)
        log(f"whereis H2 (from H1): {rec.strip()}")

        # 3. H1's owner follows H2's owner; H1's node subscribes at H2's node.
        self.cli(h1, "follow", h2.npub, "--data-dir", str(h1.data))
        t_follow = time.monotonic()
        wait_for("H1 to subscribe at H2's node (log 'subscribed at the author's node')",
                 lambda: "subscribed at the author" in h1.stderr())
        rep["subscribe_s"] = round(time.monotonic() - t_follow, 1)
        log(f"H1 subscribed at H2's node {rep['subscribe_s']}s after the follow")

        # 4. Give DCUtR its chance before the post: a direct connection (moderate), or the
        #    hole punch's final failure (symmetric: three attempts take about 30 s). Bounded;
        #    the outcome is checked below.
        def dcutr_outcome():
            if any(real_direct(c) for c in self.conns(h1, h2)):
                return "direct connection"
            logs = h1.stderr() + h2.stderr()
            if "hole punching failed" in logs:
                return "hole punching failed"
            return None
        try:
            outcome = wait_for("a DCUtR outcome", dcutr_outcome, timeout=45)
        except TestError:
            outcome = "no DCUtR outcome within 45s"
        rep["dcutr_before_post"] = outcome
        log(f"DCUtR before the post: {outcome}; H1's connections to H2: {self.conns(h1, h2)}")

        # 5. H2's owner posts; wait for it in H1's timeline. The post is large (~12 KB) so
        #    the router's byte counters show unambiguously which path carried the push.
        marker = f"nat-{self.name}-{os.getpid()}-{int(time.time())}"
        text = marker + " " + " ".join(f"{i:05d}" for i in range(2000))
        before = {k: self.net.counter("r2", k) for k in ("to_peer", "to_relay")}
        self.cli(h2, "post", text, "--data-dir", str(h2.data))
        t_post = time.monotonic()
        delivered = None
        try:
            wait_for("the post in H1's timeline",
                     lambda: marker in self.cli(h1, "timeline", "--json", "--data-dir",
                                                str(h1.data)),
                     interval=0.1)
            delivered = time.monotonic() - t_post
        except TestError as e:
            rep["delivery_error"] = str(e)
        after = {k: self.net.counter("r2", k) for k in ("to_peer", "to_relay")}
        rep["delivered"] = delivered is not None
        rep["latency_s"] = round(delivered, 2) if delivered is not None else None

        # 6. Paths: the nodes' status API (both sides), the path H2's pusher logged, and the
        #    bytes H2's router forwarded during the delivery (to H1's router = direct, to P =
        #    relayed), which do not depend on the node's own bookkeeping.
        c12, c21 = self.conns(h1, h2), self.conns(h2, h1)
        rep["H1_conns_to_H2"] = [f"{c['path']} {c['addr']}" for c in c12]
        rep["H2_conns_to_H1"] = [f"{c['path']} {c['addr']}" for c in c21]
        rep["status_path"] = "+".join(sorted({c["path"] for c in c12 + c21})) or "none"
        mislabelled = [c for c in c12 + c21 if c["path"] == "direct" and not real_direct(c)]
        if mislabelled:
            rep["status_api_mislabels"] = [
                f"'direct' for {c['addr']} (no IP address: an inbound relayed circuit)"
                for c in mislabelled]
        pushes = re.findall(r"pushed to follower.*?path=(\w+)", h2.stderr())
        rep["push_path_logged_by_H2"] = [x.lower() for x in pushes]
        d_peer = after["to_peer"] - before["to_peer"]
        d_relay = after["to_relay"] - before["to_relay"]
        rep["bytes_H2_router_to_H1_router"] = d_peer
        rep["bytes_H2_router_to_P"] = d_relay
        size = len(text)
        if d_peer >= size and d_relay < size:
            measured = "direct"
        elif d_relay >= size and d_peer < size:
            measured = "relayed"
        else:
            measured = "ambiguous" if delivered is not None else "-"
        rep["push_path_measured"] = measured
        rep["direct_h1_h2"] = any(real_direct(c) for c in c12 + c21)
        rep["path"] = measured if delivered is not None else "-"
        rep["hole_punched_logs"] = sum(
            n.stderr().count("hole punched: direct connection") for n in (h1, h2))
        rep["hole_punch_failed_logs"] = sum(
            n.stderr().count("hole punching failed") for n in (h1, h2))
        self.private_message(h1, h2, p)
        rep["seconds"] = round(time.monotonic() - t0, 1)
        return rep

    def private_message(self, h1: Node, h2: Node, p: Node) -> None:
        """7. H1's owner sends H2's owner a private message (NIP-17 gift wraps) across both
        NATs; H2 reads it. Then no file of the relay node P, nor of H1 or H2 (their stores
        hold only the wraps), may contain its text."""
        rep = self.report
        secret = f"private-{self.name}-{os.getpid()}: the vault code is 7-3-1-9"
        self.cli(h1, "dm", h2.npub, secret, "--data-dir", str(h1.data))
        t = time.monotonic()
        try:
            wait_for("the private message in H2's conversations",
                     lambda: secret in self.cli(h2, "dms", "--json", "--data-dir", str(h2.data)),
                     interval=0.25)
            rep["dm_delivered"] = True
            rep["dm_latency_s"] = round(time.monotonic() - t, 2)
        except TestError as e:
            rep["dm_delivered"] = False
            rep["dm_error"] = str(e)
        needle = secret.encode()
        leaked = []
        for node in (p, h1, h2):
            for f in node.data.rglob("*"):
                if f.is_file() and needle in f.read_bytes():
                    leaked.append(str(f))
        rep["dm_plaintext_files"] = leaked
        log(f"private message H1 -> H2: delivered={rep['dm_delivered']} "
            f"after {rep.get('dm_latency_s')}s; files holding its text: {leaked or 'none'}")

    def dump_logs(self, max_lines: int = 40) -> None:
        for node in self.nodes:
            lines = [l for l in node.stderr().splitlines() if INTERESTING.search(l)]
            print(f"--- {self.name} {node.name} ({node.err}): {len(lines)} notable log lines")
            for l in lines[-max_lines:]:
                print("    " + l[:400])


def real_direct(conn: dict) -> bool:
    """A connection labelled direct whose address has an IP (or DNS) part. The far end of
    an inbound relayed circuit has the bare address /p2p/<peer> (libp2p-relay's
    send_back_addr), so a 'direct' label on such an address is a mislabelled circuit."""
    return conn.get("path") == "direct" and bool(
        re.search(r"/(ip4|ip6|dns|dns4|dns6)/", conn.get("addr", "")))


def tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


# ---------------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    # /usr/sbin and /sbin may be missing from a non-root PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def preflight() -> None:
    """Raises CannotRun(reason, skippable): skippable only for 'not root' and 'no netns'."""
    if os.geteuid() != 0:
        raise CannotRun("the NAT test needs root (network namespaces and nftables)", True)
    missing = [t for t in ("ip", "nft") if find_tool(t) is None]
    if missing:
        pkgs = {"ip": "iproute2", "nft": "nftables"}
        raise CannotRun(
            "missing tool(s): " + ", ".join(missing) + " -- on Debian: apt-get install "
            + " ".join(pkgs[m] for m in missing), False)
    probe = f"{PREFIX}{os.getpid()}-probe"
    cp = run(["ip", "netns", "add", probe], check=False)
    if cp.returncode != 0:
        raise CannotRun(f"cannot create a network namespace: {cp.stderr.strip()}", True)
    try:
        cp = run(["ip", "netns", "exec", probe, "nft", "list", "ruleset"], check=False)
        if cp.returncode != 0:
            raise CannotRun(f"nft does not work in a network namespace: {cp.stderr.strip()}",
                            False)
    finally:
        run(["ip", "netns", "del", probe], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("STARLING_BIN"),
                    help="the starling binary (default $STARLING_BIN or target/debug/starling)")
    ap.add_argument("--scenario", choices=["moderate", "symmetric", "all"], default="all")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data dirs)")
    ap.add_argument("--skip-if-unprivileged", action="store_true",
                    help="exit 77 with a warning when not root or netns is not permitted")
    ap.add_argument("--rust-log", default=os.environ.get(
        "STNAT_RUST_LOG",
        "info,starling_net=debug,libp2p_dcutr=debug,libp2p_relay=debug,libp2p_autonat=debug"))
    args = ap.parse_args()

    # Default: <repo>/target/debug/starling, the repo being two levels above tests/nat/.
    binary = Path(args.bin) if args.bin else \
        Path(__file__).resolve().parent.parent.parent / "target" / "debug" / "starling"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"NAT test: no starling binary at {binary} (cargo build -p starling)", flush=True)
        return 2

    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    try:
        preflight()
    except CannotRun as e:
        reason, skippable = e.args
        if args.skip_if_unprivileged and skippable:
            print(f"WARNING: NAT test SKIPPED: {reason}", flush=True)
            return 77
        print(f"NAT test cannot run: {reason}", flush=True)
        return 2

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # SIGINT too: a shell's background job inherits SIGINT ignored, and Ctrl-C / kill -INT
    # must still tear everything down.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    remove_stale_namespaces()
    tmp = Path(tempfile.mkdtemp(prefix="stnat-"))
    # A private copy: a concurrent `cargo build` cannot swap the binary under the test.
    local_bin = tmp / "starling"
    shutil.copy2(binary, local_bin)
    names = ["moderate", "symmetric"] if args.scenario == "all" else [args.scenario]
    reports: list[dict] = []
    failures: list[str] = []
    t_all = time.monotonic()
    interrupted = False
    scenarios: list[Scenario] = []
    try:
        for name in names:
            sc = Scenario(name, local_bin, tmp, args.rust_log)
            scenarios.append(sc)
            try:
                rep = sc.run()
            except TestError as e:
                rep = dict(sc.report, error=str(e), delivered=False, path="-")
                log(f"scenario {name} FAILED: {e}")
            except Exception as e:  # a bug of the test itself: still report and tear down
                import traceback
                traceback.print_exc()
                rep = dict(sc.report, error=f"internal error: {e!r}", delivered=False, path="-")
            finally:
                # Read the logs before the processes and namespaces go away.
                sc.stop_all()
                sc.net.teardown()
            reports.append(rep)
            ok, why = judge(rep)
            rep["ok"] = ok
            if not ok:
                failures.append(f"{name}: {why}")
            sc.dump_logs(40 if ok else 100)
    except KeyboardInterrupt as e:
        interrupted = True
        print(f"\ninterrupted ({e}); tearing down", file=sys.stderr)
    finally:
        # A second Ctrl-C must not cut the teardown short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for sc in scenarios:
            sc.stop_all()
        for ns in list_netns():
            if ns.startswith(f"{PREFIX}{os.getpid()}-"):
                kill_netns_pids(ns)
                run(["ip", "netns", "del", ns], check=False)

    print_report(reports, time.monotonic() - t_all)
    keep = args.keep or failures or interrupted
    if keep:
        print(f"logs and data dirs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        return 130
    if failures:
        print("NAT test FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("NAT test passed")
    return 0


def judge(rep: dict) -> tuple[bool, str]:
    if rep.get("error"):
        return False, rep["error"].splitlines()[0]
    if not rep.get("delivered"):
        return False, "the post never reached H1" + (
            f" ({rep['delivery_error']})" if rep.get("delivery_error") else "")
    if not rep.get("dm_delivered"):
        return False, "the private message never reached H2" + (
            f" ({rep['dm_error']})" if rep.get("dm_error") else "")
    if rep.get("dm_plaintext_files"):
        return False, f"the private message's text is in {rep['dm_plaintext_files']}"
    if rep["scenario"] == "moderate" and not rep.get("direct_h1_h2"):
        return False, "delivered, but no direct (hole-punched) connection between H1 and H2"
    return True, ""


def print_report(reports: list[dict], total: float) -> None:
    print("\n==================== NAT test report ====================")
    print(f"{'scenario':<10} {'delivered':<9} {'latency':>8}  {'path':<9} {'status API':<18} "
          f"{'direct H1-H2':<12} {'dcutr':<22} {'result'}")
    for r in reports:
        lat = f"{r['latency_s']:.2f}s" if r.get("latency_s") is not None else "-"
        dcutr = (f"{r.get('hole_punched_logs', 0)} punched/"
                 f"{r.get('hole_punch_failed_logs', 0)} failed")
        print(f"{r['scenario']:<10} {'yes' if r.get('delivered') else 'NO':<9} {lat:>8}  "
              f"{r.get('path', '-'):<9} "
              f"{r.get('status_path', '-') + (' (!)' if r.get('status_api_mislabels') else ''):<18} "
              f"{'yes' if r.get('direct_h1_h2') else 'no':<12} {dcutr:<22} "
              f"{'ok' if r.get('ok') else 'FAIL'}")
    print("path: the push's path measured by H2's router (bytes to H1's router = direct, to P\n"
          "= relayed); status API: the paths `starling status` gives for H1<->H2 connections;\n"
          "(!): the status API calls an inbound relayed circuit 'direct' (status_api_mislabels)")
    for r in reports:
        print(f"\n[{r['scenario']}]")
        for k, v in r.items():
            if k not in ("scenario",):
                print(f"  {k}: {v}")
    print(f"\ntotal {total:.1f}s")


if __name__ == "__main__":
    sys.exit(main())

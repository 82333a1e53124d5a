"""pytest fixtures: a fresh, real starling node per test (keygen + init + run on 127.0.0.1:0)."""

from __future__ import annotations

import pytest

from starling_harness import REPORT_LINES, NodeHandle, StarlingNode, init_node, keygen, starling_bin


@pytest.fixture(scope="session")
def binary() -> str:
    return starling_bin()


def make_node(tmp_path, name: str = "node") -> NodeHandle:
    owner = keygen()
    data_dir = tmp_path / f"{name}-data"
    init_node(data_dir, owner)
    node = StarlingNode(data_dir, tmp_path / f"{name}.log")
    handle = NodeHandle(node=node, owner=owner, tmp=tmp_path)
    node.start()
    return handle


@pytest.fixture
def node(request, binary, tmp_path):
    """A running node owned by a fresh key pair; stopped (SIGTERM, then SIGKILL) at teardown."""
    handle = make_node(tmp_path)
    request.node._starling_nodes = [handle.node]
    try:
        yield handle
    finally:
        try:
            handle.node.stop()
        finally:
            handle.node.kill9()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        for n in getattr(item, "_starling_nodes", []):
            report.sections.append((f"starling log ({n.log_path.name})", n.log_tail(80)))
            report.sections.append((f"starling stdout ({n.log_path.name})", "\n".join(n.stdout_lines[-40:])))
    return report


def pytest_terminal_summary(terminalreporter):
    if REPORT_LINES:
        terminalreporter.section("starling client-test figures")
        for line in REPORT_LINES:
            terminalreporter.write_line(line)

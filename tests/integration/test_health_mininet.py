"""Issue 11's key promise in Mininet: a backend that fails gets no new connection once the
controller has detected it, and takes new connections again once it is back.

The emulated server cluster with an agent on every backend and an HTTP advisor, the real
controller, HTTP clients, and tcpdump in every backend recording client SYNs
(topo/health_bench.py, as scripts/bench_health.py runs it). Needs root, Mininet and the P4
toolchain; skips with the reason otherwise. Every run takes its network down whatever
happens; the fixture then checks that no interface named after the cluster's nodes is left
(and removes any, so that one failure does not fail the next run too).
"""

from __future__ import annotations

import time

import pytest

from topo.health_bench import FaultOptions, run_fault
from topo.mininet_support import links_named_after, missing_mininet_reason, remove_leftover_links
from topo.server_cluster import ServerCluster

pytestmark = pytest.mark.skipif(missing_mininet_reason() is not None, reason=str(missing_mininet_reason()))

# Half-second periods keep each run under a minute: detection of a silent agent in 1.25 to
# 1.75 s, recovery after 3 good periods.
OPTIONS = FaultOptions(period_s=0.5, rate=12.0, warmup_s=5.0, hold_s=4.0, after_s=6.0)


@pytest.fixture
def cluster_names(tmp_path):
    """The cluster's node names; afterwards, no interface named after them may be left."""
    names = ServerCluster(OPTIONS.spec(), tmp_path / "names").node_names()
    yield names
    deadline = time.monotonic() + 15          # namespaces go asynchronously once their processes have
    while links_named_after(names) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = links_named_after(names)
    remove_leftover_links(names)
    assert not left, f"interfaces left behind: {sorted(left)}"


@pytest.mark.parametrize("fault", ["server-killed", "agent-killed"])
def test_no_new_connection_reaches_a_failed_backend_after_detection_and_it_returns(tmp_path, cluster_names, fault):
    result = run_fault(fault, OPTIONS, tmp_path / fault)
    summary = (f"{fault}: detected {result.detected_as} after {result.detection_s} s, {result.notes}, "
               f"transitions {result.transitions}")
    assert result.detected and result.detected_as == "down", summary
    # The agent's check (server killed) within a period and a bit; a silent agent after
    # missed_limit + late_tolerance periods at most, plus a poll of the loop.
    limit = 1.5 if fault == "server-killed" else OPTIONS.missed_limit + 0.5 + 0.2
    assert result.detection_periods is not None and result.detection_periods <= limit, summary
    # The promise: from the ring write that followed the detection (the transition's own loop
    # turn, a few ms later) until the fault was undone, no new client connection reached the
    # backend's interfaces, and the switch sent nothing to its port.
    assert result.ring_write_s is not None and result.ring_write_s < 0.5, summary
    assert result.new_connections_after_detection == 0, summary
    assert result.switch_packets_after_detection == 0, summary
    assert result.switch_packets_before_fault, "the port counter counted the backend's traffic before"
    # And once back (k good periods), it takes new connections again.
    assert result.recovered, summary
    assert result.new_connections_after_recovery > 0, summary
    # No request that started after that ring write failed.
    assert result.failed_after_detection == 0, (summary, result.failed_by_phase, result.errors_in_window)

"""Fixtures several integration test files share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from topo.mininet_support import free_tcp_port, links_named_after, missing_mininet_reason
from topo.multi_dispatcher import MultiDispatcherCluster, MultiDispatcherSpec, per_process_prefix


@pytest.fixture
def cluster(request, tmp_path: Path) -> Iterator[MultiDispatcherCluster]:
    """N BMv2 dispatchers behind the ECMP router (topo/multi_dispatcher.py), N = the test's
    indirect parameter (default 2); checked to leave no link behind."""
    reason = missing_mininet_reason()
    if reason:
        pytest.skip(reason)
    dispatchers = getattr(request, "param", 2)
    spec = MultiDispatcherSpec(dispatchers=dispatchers, clients=2, capacities_mbit=(20.0, 10.0, 5.0),
                               switch_prefix=per_process_prefix(),
                               switch_ports=tuple((free_tcp_port(), free_tcp_port()) for _ in range(dispatchers)))
    running = MultiDispatcherCluster(spec, tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        assert links_named_after(running.node_names()) == {}

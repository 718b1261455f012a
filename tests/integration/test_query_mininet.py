"""Querying the capture cluster where the data lives, in Mininet: the tap replays shared
captures, the switch sends each flow to one capture node, tcpdump on every node writes
rotated files, a Dask worker in each node's namespace (on the query network beside the
switch) runs tshark on the chunks of the files its node wrote, and the answer is tshark's on
the union of all the files.

Needs root, Mininet, the P4 toolchain, tshark and the shared corpus; skips with the reason
otherwise. The network, and every process in it, goes down whatever happens.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from capture_query.store import Store
from sim.shared_data import shared_data_dir, shared_data_reason
from topo.cluster_demo import controlled
from topo.mininet_support import free_tcp_port, missing_mininet_reason

pytestmark = pytest.mark.skipif(missing_mininet_reason() is not None, reason=str(missing_mininet_reason()))

# Ethernet captures of the corpus that replay as they are (tests/integration/test_e2e_cluster.py).
CAPTURES = ("whatsapp.pcap", "instagram.pcap", "bittorrent.pcap", "zabbix.pcap", "android.pcap")
# Per packet (no reassembly): rotation cuts a node's flows across its files, and the union
# of the files is compared, not each flow's file.
QUERY = ["-Y", "tcp.flags.syn == 1 || dns", "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
         "-e", "ip.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "dns.qry.name"]


def test_workers_on_the_capture_nodes_query_the_files_tcpdump_wrote_there(tmp_path: Path) -> None:
    from topo.capture_cluster import CaptureCluster, CaptureClusterSpec
    from topo.capture_query_nodes import CaptureQueryNodes

    if shutil.which("tshark") is None or shutil.which("mergecap") is None:
        pytest.skip("tshark or mergecap not installed (scripts/setup.sh installs them)")
    reason, shared = shared_data_reason("pcaps"), shared_data_dir()
    if reason or shared is None:
        pytest.skip(f"shared capture corpus absent: {reason}")
    captures = [shared / "pcaps" / name for name in CAPTURES]
    spec = CaptureClusterSpec(probes=3, policy="round_robin", query_network=True,
                              grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
    cluster = CaptureCluster(spec, tmp_path / "cluster")
    store = tmp_path / "store"
    query_cli = [sys.executable, "-m", "controller", "query"]
    with controlled(cluster, free_tcp_port()):
        cluster.start_captures(rotate_seconds=1)
        for capture in captures:
            assert cluster.replay(capture, pps=500).failed == 0
        time.sleep(1.5)
        cluster.stop_captures()
        written = {spec.probe_name(k): cluster.written_files(spec.probe_name(k)) for k in spec.probe_indices()}
        assert sum(len(files) for files in written.values()) >= 2 * spec.probes, written   # rotated
        assert all(written.values()), written

        nodes = CaptureQueryNodes(cluster)
        address = nodes.start()
        for name, files in written.items():
            done = nodes.run([*query_cli, "ingest", *map(str, files), "--node", name, "--chunk-mb", "0.05",
                              "--store", str(store), "--scheduler", address], f"ingest {name}", 120)
            assert done.returncode == 0, done.stderr
        done = nodes.run([*query_cli, "tshark", "--store", str(store), "--scheduler", address, "--", *QUERY],
                         "query tshark", 300)
        assert done.returncode == 0, done.stderr

    placed = Store.open(store)
    assert placed.manifest.nodes == sorted(written)
    assert {c.node for c in placed.chunks()} == set(written)
    ran = re.findall(r"chunk \S+ node (\S+) worker (\S+) [0-9.]+ s$", done.stderr, re.M)
    assert len(ran) == len(placed.chunks()) and all(node == worker for node, worker in ran), ran
    union = tmp_path / "union.pcap"
    subprocess.run(["mergecap", "-w", str(union), *(str(f) for files in written.values() for f in files)],
                   check=True)
    whole = subprocess.run(["tshark", "-r", str(union), *QUERY], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    print(f"files per node {({n: len(f) for n, f in written.items()})}, {len(placed.chunks())} chunks, "
          f"{len(whole)} lines")
    assert len(whole) > 100
    assert Counter(done.stdout.splitlines()) == Counter(whole)

"""New-flow installs through the controller with 1, 2 and 3 switches (issue 15,
docs/multiswitch.md): digests handed to the serving loop as the switches' streams deliver
them (lists of 128), written by the controller's own code: one switch's Controller (home
entries), or the ClusterController of N switches (home entries on the reporting switch, then,
on each flow's ACTIVATED digest, its replicas on the N - 1 others). Measured: wall time until
every entry is on every switch, flows/s, entries written per flow, controller CPU per flow
(process_time: its gRPC threads included). No packets: the switches' own digest and
activation work is not in it, the controller's and the switches' write work is.

Each switch is a simple_switch_grpc of its own with no data ports, on free loopback ports,
stopped at the end whatever happens.

    .venv/bin/python scripts/bench_cluster_install.py --flows 20000 --switches 1 2 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finsy.proto import p4r

from controller.app import Controller
from controller.cluster_app import ClusterController
from controller.config import Config
from controller.dataplane.constants import DigestFlag
from controller.dataplane.flow_digest import FIELDS
from controller.p4runtime import P4RuntimeClient
from controller.p4runtime.encoding import encode_int
from scripts.bench_fanout import flow_keys
from topo.bmv2_switch import Bmv2Switch
from topo.mininet_support import free_tcp_port
from topo.toolchain import build_program

LIST_SIZE = 128      # flows per digest list (controller/switch_setup.py DIGEST_LIST_SIZE)


def config(addresses: list[str]) -> Config:
    switches: dict[str, Any] = ({"switch": {"grpc_address": addresses[0]}} if len(addresses) == 1 else
                                {"switches": [{"name": f"s{k}", "grpc_address": a} for k, a in
                                              enumerate(addresses, start=1)]})
    return Config.model_validate(switches | {
        "timers": {"flow_idle_timeout_s": 600.0},
        "services": [{"name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 80,
                      "policy": "round_robin", "ring_size": 1024,
                      "backends": [{"name": f"web{j}", "id": 9 + j, "port": 1 + j, "mac": f"02:00:00:00:00:0{j}"}
                                   for j in (1, 2, 3)]}]})


def digest_lists(keys: list[tuple[int, int, int, int, int]], flags: int) -> list[p4r.DigestList]:
    lists = []
    for start in range(0, len(keys), LIST_SIZE):
        msg = p4r.DigestList(digest_id=1, list_id=start // LIST_SIZE + 1)
        for i, key in enumerate(keys[start:start + LIST_SIZE], start=start):
            values = dict(zip(("src_addr", "dst_addr", "protocol", "src_port", "dst_port"), key))
            values |= {"service_id": 1, "backend_id": 10 + i % 3, "flags": flags}
            data = msg.data.add()
            for name in FIELDS:
                data.struct.members.add().bitstring = encode_int(values.get(name, 0), 128)
        lists.append(msg)
    return lists


def bench(switches: int, flows: int) -> dict:
    program = build_program("dispatcher")
    keys = flow_keys(flows)
    homes = digest_lists(keys, 0)
    activations = digest_lists(keys, DigestFlag.DIGEST_FLAG_ACTIVATED)
    with ExitStack() as stack:
        clients: dict[str, P4RuntimeClient] = {}
        for k in range(1, switches + 1):
            switch = Bmv2Switch({}, grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
            stack.enter_context(switch)
            client = P4RuntimeClient(switch.grpc_address)
            client.connect()
            stack.callback(client.close)
            clients[f"s{k}"] = client
        cfg = config([c.address for c in clients.values()])
        if switches == 1:
            controller: Controller = Controller(cfg, program)
            (client,) = clients.values()
            controller.take_over(client)
            cpu0, t0 = time.process_time(), time.monotonic()
            for digest_list in homes:
                controller.flows.on_digest_list(digest_list)
                controller.flows.flush()
            controller.flows.settle()
        else:
            cluster = ClusterController(cfg, program)
            controller = cluster
            for name, client in clients.items():
                client.set_pipeline(cluster.info.p4info, program.device_config(), cookie=program.cookie())
                cluster.join(name, client, poll=False)
            cpu0, t0 = time.process_time(), time.monotonic()
            for home, activated in zip(homes, activations):
                # Each list's ACTIVATED digests a turn after its own entries: as the home switch
                # would send them once packets found the entries (here, at once).
                cluster.cluster_flows.on_digest_list("s1", home, time.monotonic())
                cluster.turn(readings={})
                cluster.cluster_flows.on_digest_list("s1", activated, time.monotonic())
                cluster.turn(readings={})
            while cluster.flows.pending or cluster.cluster_status().replicated_flows < flows:
                cluster.turn(readings={})
                cluster.flows.settle()
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        tables = controller.tables
        counts = {name: sum(1 for _ in tables.read_flows(c)) for name, c in clients.items()}
    return {"switches": switches, "flows": flows, "seconds": round(wall, 2), "flows_per_s": round(flows / wall),
            "entries_per_flow": round(sum(counts.values()) / flows, 2),
            "controller_cpu_us_per_flow": round(cpu / flows * 1e6, 1), "entries_on_switches": counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--switches", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for n in args.switches:
        row = bench(n, args.flows)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

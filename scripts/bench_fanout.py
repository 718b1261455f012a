"""What writing every flow to N switches costs (issue 15, docs/multiswitch.md): `flows`
inserts through a SwitchSet to 1, 2 and 3 BMv2 switches, in batches of 1,000, and the
controller process's CPU per entry. The write half of "writes per flow": no digests, no
traffic, so it measures the fan-out and the switches, not the flow manager's decoding.

Each switch is a simple_switch_grpc of its own with no data ports, on free loopback ports,
stopped at the end whatever happens.

    .venv/bin/python scripts/bench_fanout.py --flows 20000 --switches 1 2 3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from controller.p4runtime.switch_set import SwitchSet
from topo.bmv2_switch import Bmv2Switch
from topo.mininet_support import free_tcp_port
from topo.toolchain import build_program


def flow_keys(count: int, seed: int = 3) -> list[tuple[int, int, int, int, int]]:
    rng = random.Random(seed)
    keys: set[tuple[int, int, int, int, int]] = set()
    while len(keys) < count:
        keys.add(((0xFFFF << 32) | rng.randrange(1 << 32), (0xFFFF << 32) | 0x0A000064, 6,
                  rng.randrange(1024, 65535), 80))
    return sorted(keys)


def bench(switches: int, flows: int, batch: int) -> dict:
    program = build_program("dispatcher")
    info = P4InfoIndex.load(program.p4info)
    tables = DispatcherTables(info)
    keys = flow_keys(flows)
    with ExitStack() as stack:
        members = {}
        for k in range(1, switches + 1):
            switch = Bmv2Switch({}, grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
            stack.enter_context(switch)
            client = P4RuntimeClient(switch.grpc_address)
            client.connect()
            stack.callback(client.close)
            client.set_pipeline_files(info.p4info, program.bmv2_json)
            members[f"s{k}"] = client
        fanout = SwitchSet(members)
        updates = [tables.flow(key, 10 + i % 3, i + 1, entry_id=i + 1) for i, key in enumerate(keys)]
        cpu0, t0 = time.process_time(), time.monotonic()
        fanout.write(updates, batch_size=batch)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        counts = {name: sum(1 for _ in tables.read_flows(client)) for name, client in members.items()}
    return {"switches": switches, "flows": flows, "batch": batch, "seconds": round(wall, 2),
            "flows_per_s": round(flows / wall), "entries_per_s": round(flows * switches / wall),
            "controller_cpu_s": round(cpu, 2), "controller_cpu_us_per_flow": round(cpu / flows * 1e6, 1),
            "entries_on_switches": counts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--switches", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for n in args.switches:
        row = bench(n, args.flows, args.batch)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

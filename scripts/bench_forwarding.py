#!/usr/bin/env python3
"""Forwarding benchmark: the dispatcher against a minimal one-table program, same BMv2, same run.

For each program it measures
  * MLFFR: the maximum loss-free forwarding rate, as the FB_EST paper did: the offered rate
    (tcpreplay) is raised until the first loss, by bisection; loss is read from the kernel's
    counters of the sending and receiving veth ends;
  * latency: packets sent one at a time from one veth end and received at the other
    (p50, p99), the same Python loop for both programs.
The dispatcher runs two traffic cases: flows served from the flow cache and ring (no
controller), and flows hitting installed `flows` entries.

    python scripts/bench_forwarding.py [--flows 1000] [--trial-packets 20000]

Prints both programs' figures and their ratios (target: dispatcher/minimal >= 0.7).
P4_PREFIX=/opt/bmv2-release runs it on another BMv2 build (e.g. one configured with
--disable-logging-macros --disable-elogger and -O3).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

from controller.dataplane.dispatcher_tables import DispatcherTables  # noqa: E402
from controller.dataplane.flow_key import flow_key  # noqa: E402
from controller.p4runtime import P4InfoIndex, P4RuntimeClient  # noqa: E402
from controller.p4runtime import entities as ent  # noqa: E402
from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason  # noqa: E402

VIP = "10.0.0.100"
IN_PORT, OUT_PORT = 1, 2
BUILD = REPO / "build" / "bench"


@dataclass
class Result:
    case: str
    mlffr_pps: float
    latency_p50_us: float
    latency_p99_us: float


def bench_frames(n_flows: int, per_flow: int) -> list[bytes]:
    """n_flows TCP connections to the VIP, interleaved: SYN, ACK, then data."""
    frames = []
    for k in range(per_flow):
        flags = "S" if k == 0 else ("A" if k == 1 else "PA")
        for f in range(n_flows):
            src = f"10.{1 + f // 60000}.{(f // 250) % 240}.{1 + f % 250}"
            pkt = (Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:fe")
                   / IP(src=src, dst=VIP) / TCP(sport=10000 + f % 50000, dport=80, flags=flags)
                   / (b"x" * (64 if k > 1 else 0)))
            frames.append(bytes(pkt))
    return frames


def rx_tx(interface: str, which: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/{which}_packets").read_text())


def offered(pcap: Path, interface: str, rate: int, packets: int) -> int:
    subprocess.run(["tcpreplay", "-q", "-i", interface, f"--pps={rate}", f"--limit={packets}",
                    "--loop=0", str(pcap)], check=True, capture_output=True)
    return packets


def loss_free(testbed: Bmv2Testbed, pcap: Path, rate: int, packets: int, tries: int = 2) -> bool:
    """No loss at this rate. A loss must happen in every try to count: on a 2-core machine
    a one-off scheduling hiccup of the sender is not the switch's limit."""
    out_if = testbed.host_interface(OUT_PORT)
    for _ in range(tries):
        before = rx_tx(out_if, "rx")
        sent = offered(pcap, testbed.host_interface(IN_PORT), rate, packets)
        time.sleep(1.0)  # drain
        if rx_tx(out_if, "rx") - before >= sent:
            return True
    return False


def mlffr(testbed: Bmv2Testbed, pcap: Path, packets: int, low: int = 1000, high: int = 200_000) -> float:
    """Bisection on the offered rate between a loss-free low and a lossy high."""
    if not loss_free(testbed, pcap, low, packets // 4):
        return 0.0
    while high / low > 1.05:
        mid = int((low * high) ** 0.5)
        if loss_free(testbed, pcap, mid, packets):
            low = mid
        else:
            high = mid
        print(f"    rate {mid:>7} pps: {'loss-free' if low == mid else 'loss'}", flush=True)
    return float(low)


def latency(testbed: Bmv2Testbed, frames: list[bytes], count: int) -> tuple[float, float]:
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((testbed.host_interface(IN_PORT), 0))
    # ETH_P_ALL with the bind, not at creation (a socket created with it captures every
    # interface until bound: another run's frames would count as received).
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    rx.bind((testbed.host_interface(OUT_PORT), 0x0003))
    rx.settimeout(1.0)
    samples = []
    with tx, rx:
        for i in range(count):
            frame = frames[i % len(frames)]
            start = time.perf_counter()
            tx.send(frame)
            try:
                while True:
                    data = rx.recv(65535)
                    if data[12:] == frame[12:]:
                        break
            except TimeoutError:
                continue
            samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def configure_minimal(client: P4RuntimeClient, info: P4InfoIndex) -> None:
    client.write([ent.update("insert", ent.table_entry(
        info, "port_forward", {"ingress_port": IN_PORT}, "output", {"port": OUT_PORT}))])


def configure_dispatcher(client: P4RuntimeClient, info: P4InfoIndex, frames: list[bytes],
                         install: bool) -> None:
    tables = DispatcherTables(info)
    updates = [tables.vip_service(VIP, 6, 80, 1, 64), tables.vip(VIP),
               tables.dispatch_settings(cache_timeout_us=600_000_000, digest_retry_us=600_000_000)]
    updates += [tables.backend_dsr(b, OUT_PORT, f"02:00:00:00:00:{b:02x}") for b in (10, 11, 12)]
    updates += tables.ring(1, [10 + i % 3 for i in range(64)], generation=1)
    if install:
        keys = {flow_key(f) for f in frames}
        updates += [tables.flow(k, 10 + i % 3, i) for i, k in enumerate(sorted(keys))]
    client.write(updates)


def run_case(case: str, program: str, frames: list[bytes], packets: int, latency_count: int,
             install: bool = False) -> Result:
    print(f"  {case}", flush=True)
    pcap = BUILD / f"{case}.pcap"
    wrpcap(str(pcap), [Ether(f) for f in frames])
    with Bmv2Testbed(ports=[IN_PORT, OUT_PORT], program=program) as testbed:
        client, info = testbed.connect()
        if program == "minimal_forward":
            configure_minimal(client, info)
        else:
            configure_dispatcher(client, info, frames, install)
        p50, p99 = latency(testbed, frames, latency_count)
        rate = mlffr(testbed, pcap, packets)
        client.close()
    return Result(case, rate, round(p50, 1), round(p99, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description="BMv2 forwarding: dispatcher vs minimal program")
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--packets-per-flow", type=int, default=10)
    parser.add_argument("--trial-packets", type=int, default=20000, help="packets per rate trial")
    parser.add_argument("--latency-packets", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    reason = missing_testbed_reason()
    if reason:
        print(f"benchmark skipped: {reason}")
        return 77
    BUILD.mkdir(parents=True, exist_ok=True)
    frames = bench_frames(args.flows, args.packets_per_flow)
    print(f"{len(frames)} frames, {args.flows} flows; {args.trial_packets} packets per rate trial")
    results = [
        run_case("minimal_forward", "minimal_forward", frames, args.trial_packets, args.latency_packets),
        run_case("dispatcher_cache", "dispatcher", frames, args.trial_packets, args.latency_packets),
        run_case("dispatcher_flows_table", "dispatcher", frames, args.trial_packets, args.latency_packets,
                 install=True),
    ]
    base = results[0]
    print(f"\n{'case':<24} {'MLFFR pps':>10} {'ratio':>6} {'p50 us':>8} {'p99 us':>8}")
    for r in results:
        ratio = r.mlffr_pps / base.mlffr_pps if base.mlffr_pps else float("nan")
        print(f"{r.case:<24} {r.mlffr_pps:>10.0f} {ratio:>6.2f} {r.latency_p50_us:>8.1f} {r.latency_p99_us:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

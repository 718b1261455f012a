#!/usr/bin/env python3
"""Per-connection consistency on the wire, under the worst the controller can do to it.

BMv2 with the real controller (fb_est polled every 100 ms with no threshold; with
--rewrite-every-poll its weights rotate so every poll rewrites the ring) and a backend
quiesced and re-activated every few seconds, while TCP-like flows
arrive at --rate per second for --duration s: SYN, ACK, data and FIN spread over up to a
second, so rings change between a flow's packets. tcpdump captures every backend port; the
captures are then read back and every flow's packets are checked to have left by one port.

    sudo .venv/bin/python scripts/bench_consistency.py --rate 1000 --duration 60
    sudo .venv/bin/python scripts/bench_consistency.py --program dispatcher_tinycache   # every flow collides
    sudo P4_PREFIX=/opt/bmv2-release .venv/bin/python scripts/bench_consistency.py --rate 3000

Prints flows checked, flows seen on two ports (must be 0), packets sent and captured, the
data plane's collisions and held generations, and the ring writes; exits 1 on any split.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from controller.dataplane.flow_key import flow_key  # noqa: E402
from sim.pcap_frames import read_frames  # noqa: E402
from topo.toolchain import find_tool  # noqa: E402

PORTS = {"grpc_port": 9859, "thrift_port": 9390, "prefix": "fk"}
PACKETS_PER_FLOW = ("S", "A", "PA", "PA", "FA")
TCP_FLAGS = {"S": 0x02, "A": 0x10, "PA": 0x18, "FA": 0x11}


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(src: int, sport: int, flags: str, vip: bytes) -> bytes:
    """A client packet to the VIP's port 80 (struct, not scapy: hundreds of thousands of them)."""
    payload = b"GET / HTTP/1.0\r\n\r\n" if flags == "PA" else b""
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 20 + len(payload), 0, 0, 64, 6, 0,
                     struct.pack(">I", src), vip)
    ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
    tcp = struct.pack(">HHIIBBHHH", sport, 80, 1, 1, 5 << 4, TCP_FLAGS[flags], 65535, 0, 0)
    return bytes.fromhex("0000000000fe0000000000010800") + ip + tcp + payload


def schedule(rate: float, duration: float, seed: int = 5) -> list[tuple[float, bytes]]:
    """Every packet of every flow with its send time: a flow's packets spread over 0.05-1 s."""
    rng = random.Random(seed)
    vip = socket.inet_aton("10.0.0.100")
    seen: set[tuple[int, int]] = set()
    packets = []
    for i in range(int(rate * duration)):
        while True:
            src, sport = rng.randrange(0x0B000000, 0x0BFFFFFF), rng.randrange(1024, 65535)
            if (src, sport) not in seen:
                seen.add((src, sport))
                break
        start = i / rate
        gaps = sorted(rng.uniform(0.0, rng.uniform(0.05, 1.0)) for _ in PACKETS_PER_FLOW[1:])
        for flags, at in zip(PACKETS_PER_FLOW, [0.0, *gaps]):
            packets.append((start + at, tcp_frame(src, sport, flags, vip)))
    packets.sort(key=lambda p: p[0])
    return packets


def _paced_sender(interface: str, packets: list[tuple[float, bytes]], started: multiprocessing.Value,
                  failed: multiprocessing.Value) -> None:
    """In a process of its own, so the controller's GIL never slows the offered load."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((interface, 0))
    t0 = time.monotonic()
    started.value = t0
    for at, frame in packets:
        delay = t0 + at - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)
        try:
            s.send(frame)
        except OSError:
            failed.value += 1
    s.close()


def churn_backends(running, names: list[str], every: float, stop: threading.Event, log: list[str]) -> None:
    """Quiesce one backend, re-activate it `every` s later, the next one, ..."""
    turn = 0
    while not stop.wait(every):
        name = names[turn % len(names)]
        running.call("quiesce", name=name)
        log.append(f"quiesce {name}")
        if stop.wait(every):
            running.call("activate", name=name)
            break
        running.call("activate", name=name)
        log.append(f"activate {name}")
        turn += 1


class CountedPolicy:
    """The policy, counting the polls that ran it (a poll waits for the counter read, which
    takes longer than the nominal interval when fb_est reads every flow's counters). With
    `rotate`, half of each poll's weight follows the policy and half a share that rotates over
    the available backends at every poll (1.6, 1.0, 0.4, ...; fb_est alone often gives one
    backend everything, which no scaling moves): the target ring then differs from the last at
    every poll, so every poll writes while two backends take flows. A stress, not a policy."""

    def __init__(self, policy, rotate: bool) -> None:
        self.policy = policy
        self.rotate = rotate
        self.polls = 0

    def __getattr__(self, name: str):
        return getattr(self.policy, name)

    def weights(self, view):
        import numpy as np
        base = self.policy.weights(view)
        self.polls += 1
        if not self.rotate:
            return base
        rotating = np.roll(np.linspace(1.6, 0.4, len(base)), self.polls) * view.available
        if rotating.sum() <= 0:
            return base
        return 0.5 * base / base.sum() + 0.5 * rotating / rotating.sum()


def ports_per_flow(captures: dict[int, Path]) -> tuple[dict[tuple, set[int]], int]:
    seen: dict[tuple, set[int]] = defaultdict(set)
    packets = 0
    for port, path in captures.items():
        for frame in read_frames(path):
            key = flow_key(frame.data)
            if key is None or key[2] != 6:
                continue
            seen[key].add(port)
            packets += 1
    return seen, packets


def run(args: argparse.Namespace) -> dict:
    from topo.controller_testbed import ControllerTestbed
    with ControllerTestbed(**PORTS) as tb:
        tb.wire.close()   # tcpdump captures instead; Python readers would cost the CPU the switch needs
        tb.wire = None
        config = tb.config(policy=args.policy, ring_size=1024, poll_interval_ms=100, program=args.program,
                           capacities=[float(c) for c in args.capacities.split(",")], idle_timeout_s=30.0)
        running = tb.run_controller(config)
        running.wait_role("primary")
        print(f"consistency: building {int(args.rate * args.duration):,} flows "
              f"({len(PACKETS_PER_FLOW)} packets each) ...", flush=True)
        packets = schedule(args.rate, args.duration)
        captures = {port: tb.work_dir / f"port{port}.pcap" for port in tb.ports[1:]}
        dumps = [subprocess.Popen(["tcpdump", "-q", "-n", "-U", "-B", "16384", "-i", tb.veths.host_side(port),
                                   "-w", str(path), "tcp"], stderr=subprocess.DEVNULL)
                 for port, path in captures.items()]
        time.sleep(1.0)   # tcpdump attached
        controller = running.controller
        updater = controller.ring_updater
        counted = CountedPolicy(updater.policies[1], rotate=args.rewrite_every_poll)
        updater.policies[1] = counted
        generation0, rewrites0 = controller.ring_updater.generation, controller.rings[1].rewrites
        slots0 = controller.rings[1].slots_written
        stop, churn_log = threading.Event(), []
        churner = threading.Thread(target=churn_backends,
                                   args=(running, ["b0", "b1", "b2"], args.churn_every, stop, churn_log))
        started, failed = multiprocessing.Value("d", 0.0), multiprocessing.Value("i", 0)
        sender = multiprocessing.Process(target=_paced_sender,
                                         args=(tb.veths.host_side(1), packets, started, failed))
        sender.start()
        churner.start()
        sender.join()
        send_seconds = time.monotonic() - started.value
        stop.set()
        churner.join()
        time.sleep(2.0)   # the switch's queue drains
        for dump in dumps:
            dump.terminate()
            dump.wait(timeout=10)
        status = controller.status()
        seen, captured = ports_per_flow(captures)
        split = {k: sorted(v) for k, v in seen.items() if len(v) > 1}
        result = {
            "program": args.program, "policy": args.policy, "bmv2": find_tool("simple_switch_grpc"),
            "offered_flows_per_s": int(args.rate * args.duration) / send_seconds,
            "flows_sent": int(args.rate * args.duration), "packets_sent": len(packets),
            "send_failures": failed.value, "packets_captured": captured,
            "flows_checked": len(seen), "flows_on_two_ports": len(split),
            "ring_writes": controller.rings[1].rewrites - rewrites0,
            "polls": counted.polls,
            "slots_rewritten": controller.rings[1].slots_written - slots0,
            "ring_generations": controller.ring_updater.generation - generation0,
            "backend_changes": churn_log,
            "flows_installed": status.flows.inserted if status.flows else None,
            "events": status.events,
        }
        if split:
            result["split_examples"] = [[str(k), v] for k, v in list(split.items())[:5]]
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="new flows per second (default 500)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of new flows (default 60)")
    parser.add_argument("--policy", default="fb_est")
    parser.add_argument("--program", default="dispatcher", help="build/<program>.json (default dispatcher)")
    parser.add_argument("--churn-every", type=float, default=5.0, help="quiesce/activate period, s")
    parser.add_argument("--capacities", default="2,4,8",
                        help="backend capacities, Mbit/s: small, so the offered load moves fb_est at every poll")
    parser.add_argument("--rewrite-every-poll", action="store_true",
                        help="scale the policy's weights by a factor rotating over the backends at each poll, "
                             "so that every poll rewrites the ring (up to the churn cap)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    from topo.controller_testbed import missing_reason
    reason = missing_reason()
    if reason:
        print(f"bench_consistency: cannot run here: {reason}")
        return 77
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"{result['flows_checked']:,} flows checked on the wire, {result['flows_on_two_ports']} on two ports; "
          f"{result['packets_captured']:,} of {result['packets_sent']:,} packets captured; "
          f"{result['ring_writes']} ring writes in {result['polls']} polls, "
          f"cache collisions {result['events'].get('cache_collision', 0):,}, "
          f"held {result['events'].get('generation_held', 0):,}")
    return 1 if result["flows_on_two_ports"] else 0


if __name__ == "__main__":
    sys.exit(main())

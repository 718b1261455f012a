#!/usr/bin/env python3
"""Robustness replay: every capture through a running BMv2 dispatcher, in a VIP and a
capture configuration. Prints the totals and exits non-zero if the switch died, a flow's
packets left on two ports, or packets went unaccounted for.

    python scripts/replay_pcaps.py                     # all of ../shared/data/pcaps, both modes
    python scripts/replay_pcaps.py --mode capture --limit 20 --json build/replay.json

The controller's flow manager (topo/flow_installer.py) turns digests into `flows`
entries with the backend the switch chose, so flows move from cache to table mid-replay,
as they would in service.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The development corpus beside the checkout, unless P4DISPATCH_SHARED_DATA names another.
os.environ.setdefault("P4DISPATCH_SHARED_DATA", str(REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))
logging.getLogger("scapy").setLevel(logging.ERROR)

from controller.dataplane.constants import DropReason  # noqa: E402
from controller.dataplane.dispatcher_tables import DispatcherTables  # noqa: E402
from controller.dataplane.flow_key import flow_key  # noqa: E402
from controller.p4runtime import P4RuntimeClient  # noqa: E402
from controller.p4runtime.encoding import address_from_flow  # noqa: E402
from sim.pcap_frames import CaptureError, read_frames  # noqa: E402
from sim.shared_data import shared_data_dir  # noqa: E402
from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason  # noqa: E402
from topo.flow_installer import FlowInstaller  # noqa: E402
from topo.lifetime import tied  # noqa: E402

SHARED = shared_data_dir()
DEFAULT_PCAPS = SHARED / "pcaps" if SHARED else None   # the shared corpus, where it is present
IN_PORT = 1
BACKEND_PORTS = {10: 2, 11: 3, 12: 4}
OTHER_PORT = 6           # where non-service traffic is flooded in VIP mode
RING_SIZE = 64
FLOOD_GROUP = 1
MAX_VIPS = 200           # one VIP per capture at most, within the `vips` table


@dataclass
class ModeReport:
    mode: str
    captures_replayed: int = 0
    captures_refused: dict[str, str] = field(default_factory=dict)
    frames_sent: int = 0
    frames_not_sendable: int = 0
    switch_received: int = 0
    forwarded: dict[int, int] = field(default_factory=dict)      # port -> packets
    dropped: dict[str, int] = field(default_factory=dict)        # reason -> packets
    unaccounted: int = 0
    flows_seen: int = 0
    flows_split: int = 0
    split_examples: list[str] = field(default_factory=list)
    flows_installed: int = 0
    services: int = 0
    switch_alive: bool = True
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.switch_alive and self.flows_split == 0 and self.unaccounted == 0


def capture_files(directory: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap"))
    return files[:limit] if limit else files


def load_captures(files: list[Path], report: ModeReport) -> list[tuple[Path, list[bytes]]]:
    loaded = []
    for path in files:
        try:
            loaded.append((path, [f.data for f in read_frames(path)]))
        except CaptureError as exc:
            report.captures_refused[path.name] = exc.problem
    return loaded


def top_services(captures: list[tuple[Path, list[bytes]]]) -> list[tuple[int, int, int]]:
    """The busiest (dst, protocol, port) of each capture: its VIP-mode service."""
    services: list[tuple[int, int, int]] = []
    for _, frames in captures:
        counts = collections.Counter()
        for frame in frames:
            key = flow_key(frame)
            if key and key[2] in (6, 17) and key[4]:
                counts[(key[1], key[2], key[4])] += 1
        for service, _ in counts.most_common(1):
            if service not in services and len({s[0] for s in services} | {service[0]}) <= MAX_VIPS:
                services.append(service)
    return services


class Sniffers:
    """tcpdump on the host end of each output port, written to pcap files."""

    def __init__(self, testbed: Bmv2Testbed, ports: list[int], directory: Path) -> None:
        self.files = {p: directory / f"out-port{p}.pcap" for p in ports}
        self.procs = []
        for port, path in self.files.items():
            # tied(): no tcpdump outlives a killed replay, and SIGINT (how stop() ends it, so
            # that it flushes its file) is not ignored even when this script runs in the background.
            self.procs.append(subprocess.Popen(
                tied(["tcpdump", "-i", testbed.host_interface(port), "-Q", "in", "-U", "-s", "0",
                      "-B", "16384", "-w", str(path)]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # tcpdump needs a moment before it captures

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            proc.wait(timeout=10)


def configure(client: P4RuntimeClient, tables: DispatcherTables, mode: str,
              services: list[tuple[int, int, int]]) -> None:
    updates = []
    if mode == "capture":
        updates.append(tables.capture_port(IN_PORT, 1, RING_SIZE))
        updates += [tables.backend_capture(b, p) for b, p in BACKEND_PORTS.items()]
        updates += tables.ring(1, [list(BACKEND_PORTS)[i % 3] for i in range(RING_SIZE)], generation=1)
    else:
        updates += [tables.backend_dsr(b, p, f"02:00:00:00:00:{b:02x}") for b, p in BACKEND_PORTS.items()]
        for service_id, (vip, protocol, port) in enumerate(services, start=1):
            updates.append(tables.vip_service(str(address_from_flow(vip)), protocol, port, service_id, RING_SIZE,
                                              ring_base=(service_id - 1) * RING_SIZE))
            updates += tables.ring(service_id, [list(BACKEND_PORTS)[(i + service_id) % 3] for i in range(RING_SIZE)],
                                   generation=1)
        for vip in sorted({s[0] for s in services}):
            updates.append(tables.vip(str(address_from_flow(vip))))
        updates += tables.l2_flood(FLOOD_GROUP, [OTHER_PORT])
    updates.append(tables.flow_digest_config(max_list_size=100, max_timeout_ns=10_000_000))
    # No expiry within a replay: the check is on the dispatch, not on the timers.
    updates.append(tables.dispatch_settings(cache_timeout_us=600_000_000, digest_retry_us=1_000_000))
    client.write(updates)


def send_frames(interface: str, captures, rate: float, report: ModeReport) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((interface, 0))
    interval = 1.0 / rate
    next_time = time.monotonic()
    with sock:
        for _, frames in captures:
            for frame in frames:
                now = time.monotonic()
                if now < next_time:
                    time.sleep(next_time - now)
                next_time = max(next_time + interval, time.monotonic() - 0.05)
                try:
                    sock.send(frame)
                    report.frames_sent += 1
                except OSError:  # larger than the link MTU, or shorter than a header
                    report.frames_not_sendable += 1
            report.captures_replayed += 1


def check_outputs(sniffers: Sniffers, symmetric: bool, report: ModeReport) -> None:
    ports_of: dict[tuple, set[int]] = collections.defaultdict(set)
    for port, path in sniffers.files.items():
        count = 0
        for frame in read_frames(path):
            count += 1
            if port != OTHER_PORT:
                key = flow_key(frame.data, symmetric)
                if key is not None:
                    ports_of[key].add(port)
        report.forwarded[port] = count
    report.flows_seen = len(ports_of)
    split = [k for k, ports in ports_of.items() if len(ports) > 1]
    report.flows_split = len(split)
    report.split_examples = [f"{address_from_flow(k[0])}:{k[3]} -> {address_from_flow(k[1])}:{k[4]} "
                             f"proto {k[2]} on ports {sorted(ports_of[k])}" for k in split[:5]]


def replay_mode(mode: str, files: list[Path], rate: float, install: bool, workdir: Path) -> ModeReport:
    report = ModeReport(mode)
    started = time.monotonic()
    captures = load_captures(files, report)
    services = top_services(captures) if mode == "vip" else []
    report.services = len(services)
    out_ports = sorted(BACKEND_PORTS.values()) + [OTHER_PORT]
    with Bmv2Testbed(ports=[IN_PORT] + out_ports) as testbed:
        client, info = testbed.connect()
        tables = DispatcherTables(info)
        configure(client, tables, mode, services)
        installer = FlowInstaller(client, tables)
        if install:
            installer.start()
        sniffers = Sniffers(testbed, out_ports, workdir)
        try:
            send_frames(testbed.host_interface(IN_PORT), captures, rate, report)
            time.sleep(2.0)  # let the switch drain
        finally:
            sniffers.stop()
            installer.stop()
        report.switch_alive = testbed.switch.alive()
        if report.switch_alive:
            report.switch_received = tables.read_counter(client, "port_in").get(IN_PORT).packets
            drops = tables.read_counter(client, "drops")
            report.dropped = {DropReason(i).name.lower(): c.packets for i, c in drops.items()}
        report.flows_installed = len(installer.installed)
        client.close()
    check_outputs(sniffers, symmetric=(mode == "capture"), report=report)
    if report.switch_alive:
        report.unaccounted = report.switch_received - sum(report.forwarded.values()) - sum(report.dropped.values())
    report.seconds = round(time.monotonic() - started, 1)
    return report


def print_report(r: ModeReport) -> None:
    print(f"\n== {r.mode} mode: {'OK' if r.ok else 'FAILED'} ({r.seconds} s)")
    print(f"captures replayed {r.captures_replayed}, refused {len(r.captures_refused)}"
          + (f" ({'; '.join(f'{k}: {v}' for k, v in r.captures_refused.items())})" if r.captures_refused else ""))
    if r.mode == "vip":
        print(f"services configured {r.services}")
    lost = r.frames_sent - r.switch_received
    print(f"frames sent {r.frames_sent} (not sendable: {r.frames_not_sendable}), received by switch {r.switch_received}"
          + (f" ({lost} lost on the way in: the switch could not keep up; try a lower --rate)" if lost else ""))
    print("forwarded per port: " + ", ".join(f"{p}: {n}" for p, n in sorted(r.forwarded.items())))
    print("dropped by reason: " + (", ".join(f"{k}: {v}" for k, v in sorted(r.dropped.items())) or "none"))
    print(f"unaccounted {r.unaccounted}; flows seen {r.flows_seen}, split over two ports {r.flows_split}, "
          f"entries installed from digests {r.flows_installed}; switch alive {r.switch_alive}")
    for example in r.split_examples:
        print(f"  split: {example}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pcaps", type=Path, default=DEFAULT_PCAPS,
                        help="directory of captures (default ../shared/data/pcaps where present)")
    parser.add_argument("--mode", choices=["vip", "capture", "both"], default="both")
    parser.add_argument("--rate", type=float, default=3000, help="frames per second sent (default 3000)")
    parser.add_argument("--limit", type=int, help="only the first N captures (by name)")
    parser.add_argument("--no-install", action="store_true", help="no flows entries: cache and ring only")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    reason = missing_testbed_reason()
    if reason:
        print(f"replay skipped: {reason}")
        return 77
    if args.pcaps is None:
        print("replay: no --pcaps given and ../shared/data/pcaps is not here: name a directory of captures",
              file=sys.stderr)
        return 2
    if not args.pcaps.is_dir():
        print(f"replay: {args.pcaps} is not a directory of captures", file=sys.stderr)
        return 2
    files = capture_files(args.pcaps, args.limit)
    workdir = REPO / "build" / "replay"
    workdir.mkdir(parents=True, exist_ok=True)
    modes = ["vip", "capture"] if args.mode == "both" else [args.mode]
    reports = []
    for mode in modes:
        print(f"replaying {len(files)} captures in {mode} mode at {args.rate:.0f} frames/s ...", flush=True)
        reports.append(replay_mode(mode, files, args.rate, not args.no_install, workdir))
        print_report(reports[-1])
    if args.json:
        args.json.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())

#!/usr/bin/env python3
"""Controller benchmarks (issue 4), each printing its figures against the target and a
baseline measured in the same run:

  new-flow-rate   UDP flows (one packet each) offered at --rate for --duration s through
                  BMv2 with the controller installing entries; installed flows/s per second
                  of the run and digest-to-entry latency p50/p99. Target >= 10,000 flows/s,
                  p99 <= 50 ms. Baseline: the offered rate (what a perfect controller installs).
  readback        100,000 `flows` entries written, then the per-flow counter (flow_stats)
                  read in bulk again and again: reads/s (target >= 1), and one full poll
                  (read + FB_EST update of every flow). Baseline: the per-backend counter.
  memory          a synthetic digest stream of --flows flows into the flow manager (no
                  switch); resident bytes per tracked flow. Target <= 500 B. Baseline: the
                  same flows in a plain dict of 5-tuples.
  first-packet    one service dispatched by the ring, one reactive (first packet through
                  the controller), same switch, same backends: first packet in -> out at the
                  backend, p50/p99, and the ratio.

    sudo .venv/bin/python scripts/bench_controller.py all
    sudo P4_PREFIX=/opt/bmv2-release .venv/bin/python scripts/bench_controller.py new-flow-rate

Needs root and the toolchain except for `memory`. P4_PREFIX picks another BMv2 build.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import random
import socket
import struct
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.toolchain import BUILD_DIR, find_tool  # noqa: E402

BENCH_PORTS = {"grpc_port": 9759, "thrift_port": 9290, "prefix": "fb"}


# ---- traffic ---------------------------------------------------------------------------------

def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_flow_frames(count: int, vip: str = "10.0.0.100", seed: int = 1) -> list[bytes]:
    """One UDP packet per flow, distinct random client address and port (fast: no scapy)."""
    rng = random.Random(seed)
    eth = bytes.fromhex("0000000000fe0000000000010800")
    dst = socket.inet_aton(vip)
    seen: set[tuple[int, int]] = set()
    frames = []
    while len(frames) < count:
        src, sport = rng.randrange(0x0B000000, 0x0BFFFFFF), rng.randrange(1024, 65535)
        if (src, sport) in seen:
            continue
        seen.add((src, sport))
        payload = b"flow"
        header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0,
                             struct.pack(">I", src), dst)
        header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
        frames.append(eth + header + struct.pack(">HHHH", sport, 80, 8 + len(payload), 0) + payload)
    return frames


def _paced_sender(interface: str, frames: list[bytes], rate: float, started: multiprocessing.Value,
                  cpu: multiprocessing.Value) -> None:
    """Runs in its own process so the controller's GIL never slows the offered load; leaves
    the CPU it used in `cpu` (seconds)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((interface, 0))
    t0 = time.monotonic()
    started.value = t0
    for i, frame in enumerate(frames):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0.001:
            time.sleep(delay)
        try:
            s.send(frame)
        except OSError:
            time.sleep(0.001)   # the veth queue is full: the switch is behind
    s.close()
    cpu.value = time.process_time()


# ---- new-flow rate --------------------------------------------------------------------------

def bench_new_flow_rate(rate: float, duration: float, idle_timeout: float, policy: str,
                        poll_ms: int = 1000) -> dict:
    import os

    from topo.controller_testbed import ControllerTestbed
    from topo.run_environment import CpuMeter, describe, summary_line
    environment = describe()
    with ControllerTestbed(**BENCH_PORTS) as tb:
        config = tb.config(protocol="udp", idle_timeout_s=idle_timeout, ring_size=1024,
                           poll_interval_ms=poll_ms, policy=policy)
        running = tb.run_controller(config)
        running.wait_role("primary")
        count = int(rate * duration)
        print(f"new-flow-rate: building {count:,} flows ...", flush=True)
        frames = udp_flow_frames(count)
        tb.wire.close()   # the backends' sockets are not needed and cost CPU
        tb.wire = None
        fm = running.controller.flows
        started, sender_cpu = multiprocessing.Value("d", 0.0), multiprocessing.Value("d", 0.0)
        sender = multiprocessing.Process(target=_paced_sender,
                                         args=(tb.veths.host_side(1), frames, rate, started, sender_cpu))
        inserted0 = fm.stats.inserted
        # Every flow's latency, not the controller's rolling window of the last 100,000.
        fm.install_latency = deque()
        cpu0 = time.process_time()
        assert tb.switch is not None and tb.switch.process is not None
        meter = CpuMeter({"switch": tb.switch.process.pid, "controller": os.getpid()})
        meter.start()
        sender.start()
        per_second = []
        last = fm.stats.inserted
        while sender.is_alive():
            time.sleep(1.0)
            now_inserted = fm.stats.inserted
            per_second.append(now_inserted - last)
            last = now_inserted
            print(f"  t={len(per_second):3d}s installed {per_second[-1]:6,d}/s  active {len(fm.table):7,d}  "
                  f"digests {fm.stats.digests:9,d}", flush=True)
        sender.join()
        meter.record("generator", sender_cpu.value)
        cores = meter.stop()
        send_time = time.monotonic() - started.value
        controller_cpu = (time.process_time() - cpu0) / send_time
        time.sleep(2.0)     # let the last digests in
        stats = fm.stats
        print(f"  controller process CPU {controller_cpu:.0%} of one core; "
              f"{stats.write_batches:,} flows writes answered in "
              f"{stats.write_seconds / max(stats.write_batches, 1) * 1e3:.1f} ms "
              f"on average ({stats.write_seconds:.1f} s of {send_time:.1f} s); "
              f"{stats.idle_notifications:,} idle-timeout notifications", flush=True)
        latency = np.array(fm.install_latency) * 1e3
        steady = per_second[2:-1] or per_second
        # Latencies are in completion order, so the installs of each second are one run of them.
        p99_per_second = [float(np.percentile(chunk, 99))
                          for chunk in np.split(latency, np.cumsum(per_second)[:-1]) if chunk.size]
        print("  p99 ms per second: " + " ".join(f"{v:.0f}" for v in p99_per_second), flush=True)
        print("  " + summary_line(environment, cores), flush=True)
        return {
            "offered_flows_per_s": count / send_time,
            "flows_offered": count,
            "flows_installed": stats.inserted - inserted0,
            "installed_per_s_mean": float(np.mean(steady)),
            "installed_per_s_min": float(np.min(steady)),
            "digests": stats.digests, "duplicate_digests": stats.duplicate_digests,
            "digest_to_entry_ms_p50": float(np.percentile(latency, 50)) if latency.size else None,
            "digest_to_entry_ms_p99": float(np.percentile(latency, 99)) if latency.size else None,
            "latency_samples": int(latency.size), "p99_ms_per_second": p99_per_second,
            "deleted_idle": stats.deleted, "table_full": stats.table_full,
            "write_failures": stats.write_failures,
            "idle_notifications": stats.idle_notifications,
            "controller_share_waiting_on_writes": stats.write_seconds / send_time,
            "controller_cpu_cores": controller_cpu,
            "write_batches": stats.write_batches,
            "mean_write_ms": stats.write_seconds / max(stats.write_batches, 1) * 1e3,
            "bmv2": find_tool("simple_switch_grpc"), "policy": policy,
            "environment": environment, "cores_used": cores,
        }


# ---- counter readback ----------------------------------------------------------------------------

def bench_readback(flows: int, reads: int) -> dict:
    from controller.dataplane.dispatcher_tables import DispatcherTables
    from controller.load_monitor import LoadMonitor
    from controller.p4runtime import P4InfoIndex, P4RuntimeClient
    from topo.controller_testbed import ControllerTestbed
    from topo.toolchain import build_program
    program = build_program("dispatcher")
    info = P4InfoIndex.load(program.p4info)
    tables = DispatcherTables(info)
    with ControllerTestbed(**BENCH_PORTS) as tb:
        client = P4RuntimeClient(tb.switch.grpc_address)
        client.connect()
        try:
            client.set_pipeline_files(info.p4info, program.bmv2_json)
            rng = random.Random(3)
            keys = {((0xFFFF << 32) | rng.randrange(1 << 32), (0xFFFF << 32) | 0x0A000064, 6,
                     rng.randrange(1024, 65535), 80) for _ in range(int(flows * 1.01))}
            keys = list(keys)[:flows]
            t0 = time.monotonic()
            client.write([tables.flow(k, 10 + i % 3, i + 1) for i, k in enumerate(keys)], batch_size=1000)
            write_s = time.monotonic() - t0
            print(f"readback: {flows:,} entries written in {write_s:.1f} s", flush=True)

            def timed(fn, n: int) -> float:
                t = time.monotonic()
                for _ in range(n):
                    fn()
                return n / (time.monotonic() - t)

            flow_reads = timed(lambda: tables.read_counter(client, "flow_stats"), reads)
            backend_reads = timed(lambda: tables.read_counter(client, "backend_traffic"), reads)
            monitor = LoadMonitor(info.counter("flow_stats").size, track_flows=True)
            monitor.estimates.track(np.arange(1, flows + 1), np.full(flows, 10), np.full(flows, 0.001))

            def poll() -> None:
                monitor.update(time.monotonic(), tables.read_counter(client, "backend_traffic"),
                               tables.read_counter(client, "flow_stats"))
            polls = timed(poll, reads)
            table_reads = timed(lambda: tables.read_flows(client), 2)
        finally:
            client.close()
    return {"entries": flows, "insert_per_s": flows / write_s,
            "flow_counter_reads_per_s": flow_reads, "flow_counter_cells": info.counter("flow_stats").size,
            "backend_counter_reads_per_s": backend_reads, "full_polls_per_s": polls,
            "flows_table_reads_per_s": table_reads}


# ---- memory -----------------------------------------------------------------------------------

def _rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _memory_child(flows: int, kind: str, out) -> None:
    from controller.dataplane.dispatcher_tables import DispatcherTables
    from controller.dataplane.flow_digest import FlowDigest
    from controller.flow_manager import FlowManager
    from controller.p4runtime import P4InfoIndex

    class NullSwitch:
        done_at = 0.0

        def write(self, updates, batch_size: int = 1000) -> None:
            pass

        def write_async(self, updates):
            return self

        def result(self) -> None:
            pass

    tables = DispatcherTables(P4InfoIndex.load(BUILD_DIR / "dispatcher.p4info.txtpb"))
    rng = np.random.default_rng(5)
    src = (0xFFFF << 32) | 0
    fm = FlowManager(tables, NullSwitch(), known_backend=lambda b: True, idle_timeout_ns=10**10,
                     stats_slots=131072, table_size=2 * flows) if kind == "flow_manager" else None
    naive: dict = {}
    before = _rss()
    batch = 10_000
    for start in range(0, flows, batch):
        addrs = rng.integers(0, 1 << 32, batch)
        ports = rng.integers(1024, 65535, batch)
        for j in range(batch):
            key = (src | int(addrs[j]), (0xFFFF << 32) | 0x0A000064, 6, int(ports[j]), 80)
            if fm is not None:
                fm.on_digest(FlowDigest(*key, 1, 10 + j % 3, 0, 0, 0x10, 0, 0), 0.0)
            else:
                naive[key] = (10 + j % 3, start + j)
        if fm is not None:
            fm.settle()
    tracked = len(fm.table) if fm is not None else len(naive)
    out.put((kind, tracked, _rss() - before))


def bench_memory(flows: int) -> dict:
    results = {}
    for kind in ("flow_manager", "naive_dict"):
        q: multiprocessing.Queue = multiprocessing.Queue()
        p = multiprocessing.Process(target=_memory_child, args=(flows, kind, q))
        p.start()
        name, tracked, grown = q.get()
        p.join()
        results[name] = {"flows": tracked, "bytes_per_flow": grown / tracked}
        print(f"memory: {name}: {tracked:,} flows, {grown / tracked:.0f} B/flow", flush=True)
    results["ratio_to_naive"] = results["flow_manager"]["bytes_per_flow"] / results["naive_dict"]["bytes_per_flow"]
    return results


# ---- first-packet latency -------------------------------------------------------------------

def bench_first_packet(flows: int) -> dict:
    from controller.cli import api_call
    from controller.dataplane.flow_key import flow_key
    from topo.controller_testbed import ControllerTestbed, client_flow, dispatcher_config, udp_frame
    with ControllerTestbed(**BENCH_PORTS) as tb:
        config = dispatcher_config(3, grpc_port=tb.grpc_port, protocol="udp")
        ring_service = config["services"][0]
        reactive = json.loads(json.dumps(ring_service))
        reactive.update(name="reactive", id=2, vip="10.0.0.101", dispatch="reactive")
        for b in reactive["backends"]:
            b.update(name="r" + b["name"], id=b["id"] + 10)
        config["services"].append(reactive)
        proc = tb.controller_process(config, election_id=1, api_port=9184, name="first-packet")
        deadline = time.monotonic() + 30
        while True:
            try:
                if api_call(proc.api, "/api/status").get("role") == "primary":
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"controller did not start:\n{proc.log()[-2000:]}")
            time.sleep(0.1)
        sent: dict[str, dict[tuple, float]] = {"ring": {}, "reactive": {}}
        for i in range(flows):
            for mode, vip in (("ring", "10.0.0.100"), ("reactive", "10.0.0.101")):
                frame = udp_frame(*client_flow(i, seed=9), dst=vip)
                sent[mode][flow_key(frame)] = time.monotonic()
                tb.wire.send(frame)
                time.sleep(0.01)
        tb.wire.wait_received(2 * flows, timeout=10)
        out = {}
        for mode, times in sent.items():
            lat = np.array([tb.wire.first_seen[k] - t for k, t in times.items() if k in tb.wire.first_seen]) * 1e6
            out[mode] = {"received": int(lat.size), "sent": len(times),
                         "p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99))}
        out["ratio_p50"] = out["reactive"]["p50_us"] / out["ring"]["p50_us"]
        out["ratio_p99"] = out["reactive"]["p99_us"] / out["ring"]["p99_us"]
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=["new-flow-rate", "readback", "memory", "first-packet", "all"])
    parser.add_argument("--rate", type=float, default=10_000, help="offered new flows/s")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of offered load")
    parser.add_argument("--idle-timeout", type=float, default=2.0, help="flows entries' idle timeout, s")
    parser.add_argument("--poll-ms", type=int, default=1000, help="counter poll interval in new-flow-rate")
    parser.add_argument("--policy", default="round_robin",
                        help="the service's policy in new-flow-rate (fb_est adds per-flow estimation)")
    parser.add_argument("--flows", type=int, default=None, help="flows for readback/memory/first-packet")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = {}
    chosen = ["memory", "readback", "first-packet", "new-flow-rate"] if args.bench == "all" else [args.bench]
    for bench in chosen:
        if bench == "new-flow-rate":
            r = bench_new_flow_rate(args.rate, args.duration, args.idle_timeout, args.policy, args.poll_ms)
            ok = r["installed_per_s_mean"] >= 10_000 and (r["digest_to_entry_ms_p99"] or 1e9) <= 50
            print(f"\nnew-flow rate: offered {r['offered_flows_per_s']:,.0f} flows/s for {args.duration:.0f} s; "
                  f"installed {r['installed_per_s_mean']:,.0f} flows/s mean, {r['installed_per_s_min']:,.0f} min "
                  f"({r['installed_per_s_mean'] / r['offered_flows_per_s']:.2f} of offered); "
                  f"digest->entry p50 {r['digest_to_entry_ms_p50']:.1f} ms, p99 {r['digest_to_entry_ms_p99']:.1f} ms; "
                  f"{r['flows_installed']:,} of {r['flows_offered']:,} flows got entries. "
                  f"Target >= 10,000/s, p99 <= 50 ms: {'met' if ok else 'NOT met'}")
        elif bench == "readback":
            r = bench_readback(args.flows or 100_000, reads=10)
            print(f"\nreadback: {r['entries']:,} entries; flow_stats ({r['flow_counter_cells']:,} cells) "
                  f"{r['flow_counter_reads_per_s']:.2f} reads/s, "
                  f"backend counter {r['backend_counter_reads_per_s']:.1f} "
                  f"reads/s, full poll with FB_EST update {r['full_polls_per_s']:.2f}/s, whole `flows` table "
                  f"{r['flows_table_reads_per_s']:.2f} reads/s. Target >= 1 read/s: "
                  f"{'met' if r['flow_counter_reads_per_s'] >= 1 else 'NOT met'}")
        elif bench == "memory":
            r = bench_memory(args.flows or 1_000_000)
            fm = r["flow_manager"]["bytes_per_flow"]
            print(f"\nmemory: {fm:.0f} B per tracked flow at {r['flow_manager']['flows']:,} flows "
                  f"(plain dict of tuples: {r['naive_dict']['bytes_per_flow']:.0f} B, "
                  f"ratio {r['ratio_to_naive']:.2f}). "
                  f"Target <= 500 B: {'met' if fm <= 500 else 'NOT met'}")
        else:
            r = bench_first_packet(args.flows or 200)
            print(f"\nfirst packet: ring p50 {r['ring']['p50_us']:.0f} us p99 {r['ring']['p99_us']:.0f} us; "
                  f"reactive p50 {r['reactive']['p50_us']:.0f} us p99 {r['reactive']['p99_us']:.0f} us; "
                  f"reactive/ring x{r['ratio_p50']:.1f} (p50), x{r['ratio_p99']:.1f} (p99); "
                  f"received {r['ring']['received']}/{r['ring']['sent']} and "
                  f"{r['reactive']['received']}/{r['reactive']['sent']}")
        results[bench] = r
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

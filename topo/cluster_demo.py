"""The main job: an emulated cluster, the real controller, real traffic, a live table, a plot.

    p4dispatch demo [--topo servers|capture] [--policy fb_est] [--duration 30] ...

servers: clients open HTTP connections (Poisson arrivals, object sizes from a built-in
  flow-size model, fb_hadoop by default, or a .cdf file) to a VIP; the BMv2 dispatcher
  spreads them over backends of unequal capacity, which answer directly (DSR). The
  controller installs the switch's choices and rewrites the ring by the chosen policy.
capture: a tap replays captures into the switch (the files given, or captures generated
  with scapy into --out); each flow, both directions, goes to one capture node running
  tcpdump; the files are checked with tshark at the end.

A live table shows each backend while it runs; at the end a PNG and a JSON summary are
written to --out. Ctrl-C, SIGTERM or any error stops everything this run started: controller,
hosts' processes, switch, namespaces and links (exit codes 130, 143 and 1). Killed outright
(SIGKILL), the run still leaves no switch, server or host behind: they die with it (see
topo/lifetime.py and docs/emulation.md).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from controller.config import Config
from controller.status import ControllerStatus
from topo.lifetime import Stopped, StopSignals, say, teardown
from topo.mininet_support import free_tcp_port, missing_mininet_reason
from workload.connections import count_connections

REPO = Path(__file__).resolve().parent.parent


class DemoError(RuntimeError):
    """The run cannot go on (the switch died, the controller never became primary, ...)."""


@dataclass
class DemoOptions:
    topo: str = "servers"
    policy: str = "fb_est"
    duration: float = 30.0
    rate: float = 30.0                     # new connections/s over all clients
    clients: int = 4
    capacities: tuple[float, ...] = (20.0, 10.0, 5.0)
    cdf: str = "fb_hadoop"                 # a built-in flow-size model, shared:NAME or a .cdf file
    max_bytes: int = 2_000_000
    probes: int = 3
    captures: tuple[str, ...] = ()         # paths (or names in $P4DISPATCH_SHARED_DATA/pcaps); (): generated
    replay_pps: int = 500
    out: Path = REPO / "results" / "demo"
    api_port: int = 9180


class EmbeddedController:
    """The controller and its HTTP API in this process, stopped on exit."""

    def __init__(self, config: Config) -> None:
        from controller.admin_api import AdminApi
        from controller.app import Controller
        self.controller = Controller(config)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop_event,),
                                       name="controller", daemon=True)
        try:
            self.api = AdminApi(self.controller, config.api.address, config.api.port)
        except OSError as exc:
            raise DemoError(f"cannot serve the controller API on {config.api.address}:"
                            f"{config.api.port} ({exc.strerror}): choose another with --api-port") from None

    def __enter__(self) -> EmbeddedController:
        self.api.start()
        self.thread.start()
        return self

    def wait_primary(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.controller.role != "primary":
            if time.monotonic() > deadline:
                raise DemoError(f"the controller did not become primary in {timeout:.0f} s "
                                f"(it is {self.controller.role}); see the log")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        with teardown():          # a stop signal meanwhile waits until the API is down too
            self.stop_event.set()
            self.thread.join(timeout=15)
            self.api.stop()


@contextmanager
def controlled(cluster, api_port: int, timers: dict[str, Any] | None = None,
               service: dict[str, Any] | None = None) -> Iterator[EmbeddedController]:
    """The cluster up and the controller serving it as primary; both stopped on exit.
    `service`: settings of the (first) service to change, e.g. its protocol and sessions."""
    with cluster:
        config = cluster.controller_config()
        config["api"] = {"address": "127.0.0.1", "port": api_port}
        config["timers"].update(timers or {})
        config["services"][0].update(service or {})
        with EmbeddedController(Config.model_validate(config)) as embedded:
            embedded.wait_primary()
            yield embedded


def _check_switch(cluster) -> None:
    if not cluster.switch.alive():
        raise DemoError(f"the switch (simple_switch_grpc) died mid-run:\n{cluster.switch.output_tail(5)}")


def run(options: DemoOptions) -> int:
    """The demo; its exit code: 0 done, 1 failed, 77 cannot run here, 130 on SIGINT, 143 on SIGTERM."""
    # SIGINT and SIGTERM (service managers, `timeout`) stop the run alike, and SIGINT works
    # even when inherited ignored (a background job of a non-interactive shell): either
    # raises Stopped here, in the main thread, and the `with` blocks below take down what
    # was started. A second signal does not cut that clean-up short.
    with StopSignals(on_repeat=_still_stopping):
        return _run(options)


def _still_stopping(signum: int) -> None:
    say(f"{signal.Signals(signum).name} again: still stopping what this run started "
        "(SIGKILL would leave no process behind either)")


def _run(options: DemoOptions) -> int:
    console = Console()
    try:
        reason = missing_mininet_reason()
        if reason:
            console.print(f"[red]demo cannot run here:[/] {reason}")
            return 77
        options.out.mkdir(parents=True, exist_ok=True)
        _log_to_file(options.out / f"{options.topo}-controller.log", console)
        if options.topo == "servers":
            return _run_servers(options, console)
        return _run_capture(options, console)
    except Stopped as stop:
        verb = "interrupted" if stop.signum == signal.SIGINT else "terminated"
        console.print(f"[yellow]{verb} ({stop.name}): everything this run started has been stopped[/]")
        return stop.exit_code
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: everything this run started has been stopped[/]")
        return 130
    except DemoError as exc:
        console.print(f"[red]error:[/] {exc}")
        console.print("everything this run started has been stopped")
        return 1


def _log_to_file(path: Path, console: Console) -> None:
    """Everything to a file; warnings also on the console, above the live table."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    to_file = logging.FileHandler(path, mode="w")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    to_console = RichHandler(console=console, level=logging.WARNING, show_path=False)
    root.addHandler(to_file)
    root.addHandler(to_console)


# ---- server cluster ------------------------------------------------------------------------------

def _run_servers(options: DemoOptions, console: Console) -> int:
    from topo.server_cluster import ServerCluster, ServerClusterSpec, read_connection_log

    spec = ServerClusterSpec(clients=options.clients, capacities_mbit=options.capacities,
                             policy=options.policy, grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
    workdir = options.out / "servers-run"
    console.print(f"starting the server cluster: {spec.clients} clients, backends of "
                  f"{', '.join(f'{c:g}' for c in spec.capacities_mbit)} Mbit/s, policy {spec.policy}")
    cluster = ServerCluster(spec, workdir)
    with controlled(cluster, options.api_port) as embedded:
        logs = cluster.start_http_servers()
        per_client = max(1, round(options.rate * options.duration / spec.clients))
        outcome: dict[str, Any] = {}

        def clients() -> None:
            try:
                outcome["runs"] = cluster.run_clients(
                    rate=options.rate / spec.clients, requests=per_client, cdf=options.cdf,
                    max_bytes=options.max_bytes, timeout=options.duration + 120)
            except Exception as exc:   # reported by the main thread
                outcome["error"] = exc

        runner = threading.Thread(target=clients, name="clients", daemon=True)
        started = time.monotonic()
        runner.start()
        console.print(f"controller API and metrics: http://127.0.0.1:{options.api_port} "
                      f"(p4dispatch status --api http://127.0.0.1:{options.api_port})")
        with Live(console=console, refresh_per_second=4) as live:
            while runner.is_alive():
                _check_switch(cluster)
                status = embedded.controller.status()
                connections = {name: read_connection_log(path) for name, path in logs.items()}
                live.update(_server_table(status, connections, time.monotonic() - started,
                                          options.duration))
                runner.join(0.5)
        if "error" in outcome:
            raise DemoError(f"the clients failed: {outcome['error']}")
        final_status = embedded.controller.status()
        connections = {name: read_connection_log(path) for name, path in logs.items()}
    summary = _server_summary(options, spec, outcome["runs"], connections, final_status)
    plot = _server_plot(options, spec, connections, summary)
    path = options.out / "servers-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    _print_server_summary(console, summary, plot, path)
    return 0 if summary["failed"] == 0 else 1


def _flows_caption(status: ControllerStatus) -> str:
    flows = status.flows
    if flows is None:
        return f"controller {status.role}"
    return (f"controller {status.role}: {flows.active} flows entries, {flows.digests} digests, "
            f"{flows.inserted} inserted, {flows.deleted} deleted")


def _server_table(status: ControllerStatus, connections: dict[str, list[dict]], elapsed: float,
                  duration: float) -> Table:
    table = Table(title=f"flow dispatcher demo: {elapsed:.0f} s of ~{duration:.0f} s",
                  caption=_flows_caption(status))
    for column in ("backend", "state", "capacity Mbit/s", "ring share", "connections", "share",
                   "Mbit/s (last 5 s)", "MB served", "flows entries"):
        table.add_column(column, justify="left" if column in ("backend", "state") else "right")
    total = sum(len(c) for c in connections.values()) or 1
    now = time.time()
    for service in status.services:
        for b in service.backends:
            served = connections.get(b.name, [])
            recent = sum(c["bytes"] for c in served if c["time"] + c["seconds"] > now - 5) * 8 / 5 / 1e6
            table.add_row(b.name, b.state, f"{b.capacity_mbps:g}", f"{b.ring_share:.0%}",
                          str(len(served)), f"{len(served) / total:.0%}", f"{recent:.1f}",
                          f"{sum(c['bytes'] for c in served) / 1e6:.1f}", str(b.flows))
    return table


def served_rate_per_second(connections: list[dict], start: float, seconds: int) -> np.ndarray:
    """Bytes/s a server sent in each 1 s bin, each response spread evenly over its duration."""
    bins = np.zeros(seconds)
    for c in connections:
        first, last = c["time"] - start, c["time"] - start + max(c["seconds"], 1e-3)
        lo, hi = int(max(first, 0)), int(min(np.ceil(last), seconds))
        for b in range(lo, hi):
            overlap = min(last, b + 1) - max(first, b)
            if overlap > 0:
                bins[b] += c["bytes"] * overlap / (last - first)
    return bins


def utilisation_spread(utilisation: np.ndarray, windows: int | None = None) -> dict[str, float | None]:
    """max/mean of per-second utilisation across servers (rows: servers, columns: 1 s
    windows), over the windows with real load (mean above 5 %) among the first `windows`
    (None: all): its mean, median and 99th percentile."""
    u = utilisation[:, :windows] if windows is not None else utilisation
    busy = u.mean(axis=0) > 0.05
    ratio = u.max(axis=0)[busy] / u.mean(axis=0)[busy] if busy.any() else np.array([])
    if not ratio.size:
        return {"mean": None, "p50": None, "p99": None}
    return {"mean": float(ratio.mean()), "p50": float(np.percentile(ratio, 50)),
            "p99": float(np.percentile(ratio, 99))}


def _server_summary(options: DemoOptions, spec, runs: dict, connections: dict[str, list[dict]],
                    status: ControllerStatus) -> dict:
    records = [r for run in runs.values() for r in run.records]
    ok = [r for r in records if r.get("status") == 200 and not r.get("error")]
    latencies = np.array([r["latency"] for r in ok if r.get("latency") is not None])
    # Connections, not client ports: a port reused after its connection closed is a new
    # connection, and only one whose records overlap on two servers was split.
    counted = count_connections(connections)
    start = min((c["time"] for conns in connections.values() for c in conns), default=time.time())
    end = max((c["time"] + c["seconds"] for conns in connections.values() for c in conns), default=start)
    seconds = max(1, int(np.ceil(end - start)))
    capacity = {spec.backend_name(j): spec.capacities_mbit[j - 1] for j in spec.backend_indices()}
    utilisation = np.array([served_rate_per_second(connections.get(n, []), start, seconds) * 8 / 1e6 / capacity[n]
                            for n in capacity])
    spread = utilisation_spread(utilisation)
    # The windows that start before the last connection did (arrivals still coming), as the
    # simulator counts them: once arrivals stop, the last responses drain from whichever
    # servers hold them, and those seconds say nothing about balance.
    last_arrival = max((c["time"] for conns in connections.values() for c in conns), default=start)
    arriving = utilisation_spread(utilisation, int(np.ceil(last_arrival - start)) or 1)
    total = sum(len(c) for c in connections.values()) or 1
    backends = []
    for name in capacity:
        conns = connections.get(name, [])
        backends.append({"name": name, "capacity_mbps": capacity[name],
                         "capacity_share": capacity[name] / sum(capacity.values()),
                         "connections": len(conns), "share": len(conns) / total,
                         "bytes_served": sum(c["bytes"] for c in conns),
                         "mean_utilisation": float(utilisation[list(capacity).index(name)].mean())})
    return {
        "topo": "servers", "policy": options.policy, "clients": spec.clients,
        "offered_rate": options.rate, "object_sizes": options.cdf, "max_bytes": options.max_bytes,
        "requests": len(records), "ok": len(ok), "failed": len(records) - len(ok),
        "errors": dict(Counter(r.get("error") or f"status {r.get('status')}" for r in records
                               if r not in ok)),
        "requests_per_s": len(ok) / max(max(run.summary["seconds"] for run in runs.values()), 1e-9),
        "latency_p50_ms": float(np.percentile(latencies, 50) * 1e3) if latencies.size else None,
        "latency_p99_ms": float(np.percentile(latencies, 99) * 1e3) if latencies.size else None,
        "connections": len(counted.connections),
        "client_ports_reused": counted.reused_ports,
        "connections_split": len(counted.split),
        "split_examples": [{"client": c.client, "servers": sorted(set(c.servers)), "start": c.start,
                            "end": c.end} for c in counted.split[:5]],
        "max_over_mean_utilisation_mean": spread["mean"],
        "max_over_mean_utilisation_p50": spread["p50"],
        "max_over_mean_utilisation_p99": spread["p99"],
        "max_over_mean_utilisation_while_arriving": arriving,
        "backends": backends,
        "controller": ({k: getattr(status.flows, k) for k in
                        ("digests", "inserted", "deleted", "duplicate_digests", "table_full")}
                       if status.flows is not None else {}),
        "utilisation_per_second": {n: utilisation[i].round(3).tolist() for i, n in enumerate(capacity)},
    }


def _server_plot(options: DemoOptions, spec, connections: dict, summary: dict) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (load, shares) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    for name, series in summary["utilisation_per_second"].items():
        load.plot(np.arange(len(series)), np.array(series) * 100, label=name)
    load.set_xlabel("time, s")
    load.set_ylabel("served / capacity, %")
    load.set_title(f"backend utilisation ({options.policy})")
    load.legend()
    names = [b["name"] for b in summary["backends"]]
    x = np.arange(len(names))
    shares.bar(x - 0.2, [b["capacity_share"] * 100 for b in summary["backends"]], 0.4, label="capacity")
    shares.bar(x + 0.2, [b["share"] * 100 for b in summary["backends"]], 0.4, label="connections")
    shares.set_xticks(x, names)
    shares.set_ylabel("% of total")
    shares.set_title("shares")
    shares.legend()
    fig.tight_layout()
    path = options.out / "servers.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _print_server_summary(console: Console, s: dict, plot: Path, path: Path) -> None:
    console.print()
    table = Table(title=f"summary: {s['ok']} of {s['requests']} requests ok, {s['failed']} failed, "
                        f"{s['requests_per_s']:.1f} req/s, latency p50 {s['latency_p50_ms'] or 0:.0f} ms "
                        f"p99 {s['latency_p99_ms'] or 0:.0f} ms")
    for column in ("backend", "capacity share", "connection share", "MB served", "mean utilisation"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for b in s["backends"]:
        table.add_row(b["name"], f"{b['capacity_share']:.0%}", f"{b['share']:.0%}",
                      f"{b['bytes_served'] / 1e6:.1f}", f"{b['mean_utilisation']:.0%}")
    console.print(table)
    ratio = s["max_over_mean_utilisation_mean"]
    arriving = s["max_over_mean_utilisation_while_arriving"]
    console.print(f"max/mean utilisation over 1 s windows: mean {ratio or 0:.2f}, "
                  f"p50 {s['max_over_mean_utilisation_p50'] or 0:.2f}, "
                  f"p99 {s['max_over_mean_utilisation_p99'] or 0:.2f}; "
                  f"while requests arrive: mean {arriving['mean'] or 0:.2f}, p50 {arriving['p50'] or 0:.2f}, "
                  f"p99 {arriving['p99'] or 0:.2f}")
    console.print(f"connections split over two servers: {s['connections_split']} of {s['connections']} "
                  f"({s['client_ports_reused']} client ports reused for a later connection, not counted as split)")
    console.print(f"plot: {plot}\nsummary: {path}")


# ---- capture cluster --------------------------------------------------------------------------------

def _run_capture(options: DemoOptions, console: Console) -> int:
    from topo.capture_cluster import CaptureCluster, CaptureClusterSpec
    from topo.capture_sources import CaptureSourceError, demo_captures

    try:
        captures = demo_captures(options.captures, options.out)
    except CaptureSourceError as exc:
        raise DemoError(f"--captures: {exc}") from None
    if not options.captures:
        console.print(f"no --captures given: generated {len(captures)} captures into {captures[0].parent}")
    spec = CaptureClusterSpec(probes=options.probes, policy=options.policy,
                              grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
    workdir = options.out / "capture-run"
    console.print(f"starting the capture cluster: {spec.probes} capture nodes, policy {spec.policy}; "
                  f"replaying {len(captures)} captures at {options.replay_pps} packets/s")
    cluster = CaptureCluster(spec, workdir)
    with controlled(cluster, options.api_port) as embedded:
        files = cluster.start_captures()
        replayed: dict[str, int] = {}   # capture name -> frames sent
        with Live(console=console, refresh_per_second=4) as live:
            for capture in captures:
                outcome: dict[str, Any] = {}
                # Bound as defaults: each thread writes its own iteration's outcome.
                replay = threading.Thread(target=lambda c=capture, out=outcome: out.update(
                    result=cluster.replay(c, pps=options.replay_pps)), daemon=True)
                replay.start()
                while replay.is_alive():
                    _check_switch(cluster)
                    live.update(_capture_table(embedded.controller.status(), capture.name, replayed))
                    replay.join(0.5)
                if "result" not in outcome:
                    raise DemoError(f"replaying {capture.name} failed (see {workdir})")
                replayed[capture.name] = outcome["result"].sent
            time.sleep(1.0)   # the last frames through the switch
            live.update(_capture_table(embedded.controller.status(), "done", replayed))
        cluster.stop_captures()
    summary = capture_summary(options, captures, files)
    plot = _capture_plot(options, summary)
    path = options.out / "capture-summary.json"
    path.write_text(json.dumps(summary, indent=2))
    console.print()
    console.print(f"replayed {summary['replayed_frames']} frames; captured {summary['captured_frames']} "
                  f"on {len(files)} nodes; {summary['flows']} IP flows, split over nodes: "
                  f"{summary['flows_on_two_nodes']} ({summary['non_ip_frames']} non-IP frames, spread "
                  f"frame by frame)")
    for node in summary["nodes"]:
        console.print(f"  {node['name']}: {node['frames']} frames, {node['flows']} flows "
                      f"({node['frame_share']:.0%} of frames)")
    console.print(f"plot: {plot}\nsummary: {path}")
    ok = summary["captured_frames"] == summary["replayed_frames"] and summary["flows_on_two_nodes"] == 0
    return 0 if ok else 1


def _capture_table(status: ControllerStatus, current: str, replayed: dict[str, int]) -> Table:
    table = Table(title=f"capture demo: replaying {current}; done: {', '.join(replayed) or '-'}",
                  caption=_flows_caption(status))
    for column in ("capture node", "state", "ring share", "flows entries", "packets"):
        table.add_column(column)
    for service in status.services:
        for b in service.backends:
            table.add_row(b.name, b.state, f"{b.ring_share:.0%}", str(b.flows), str(b.packets))
    return table


def tshark_flows(path: Path, directional: bool = False) -> Counter:
    """Frames per flow in a capture file, by tshark: both directions as one flow, or (with
    `directional`) each direction on its own."""
    fields = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto", "ipv6.nxt",
              "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "eth.src", "eth.dst"]
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    flows: Counter = Counter()
    for line in out.splitlines():
        v = line.split("|")
        src, dst = (v[0] or v[2] or v[10]), (v[1] or v[3] or v[11])
        proto = (v[4] or v[5]).split(",")[0]
        sport, dport = (v[6] or v[8]).split(",")[0], (v[7] or v[9]).split(",")[0]
        a, b = ((src, sport), (dst, dport)) if directional else sorted([(src, sport), (dst, dport)])
        flows[(a, b, proto)] += 1
    return flows


def tshark_count(path: Path) -> int:
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.split())


def capture_summary(options: DemoOptions, captures: list[Path], files: dict[str, Path]) -> dict:
    replayed = sum(tshark_count(c) for c in captures)
    per_node = {name: tshark_flows(path) for name, path in files.items()}
    nodes_of: dict[tuple, list[str]] = defaultdict(list)
    for name, flows in per_node.items():
        for flow in flows:
            nodes_of[flow].append(name)
    captured = sum(sum(f.values()) for f in per_node.values())
    # Non-IP frames (ARP, LLDP, ...) have no connection: the switch spreads them frame by
    # frame, so they are counted but not held to "one node per flow".
    ip_flows = {flow: nodes for flow, nodes in nodes_of.items() if flow[2]}
    return {
        "topo": "capture", "policy": options.policy, "captures": [c.name for c in captures],
        "replayed_frames": replayed, "captured_frames": captured,
        "non_ip_frames": sum(c for flows in per_node.values() for f, c in flows.items() if not f[2]),
        "flows": len(ip_flows), "flows_on_two_nodes": sum(1 for n in ip_flows.values() if len(n) > 1),
        "nodes": [{"name": name, "frames": sum(flows.values()), "flows": len(flows),
                   "frame_share": sum(flows.values()) / max(captured, 1)}
                  for name, flows in per_node.items()],
    }


def _capture_plot(options: DemoOptions, summary: dict) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [n["name"] for n in summary["nodes"]]
    x = np.arange(len(names))
    frames = ax.bar(x - 0.2, [n["frames"] for n in summary["nodes"]], 0.4, label="frames")
    ax2 = ax.twinx()
    flows = ax2.bar(x + 0.2, [n["flows"] for n in summary["nodes"]], 0.4, color="tab:orange", label="IP flows")
    ax.set_xticks(x, names)
    ax.set_ylabel("frames captured")
    ax2.set_ylabel("flows")
    ax.set_title(f"capture nodes ({options.policy}): {summary['captured_frames']} of "
                 f"{summary['replayed_frames']} frames, {summary['flows_on_two_nodes']} flows split",
                 fontsize=10)
    fig.legend(handles=[frames, flows], loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = options.out / "capture.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

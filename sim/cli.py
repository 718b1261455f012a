"""`p4dispatch simulate`: compare policies on a capture or a generated workload."""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from controller.dataplane.constants import FLOW_CACHE_SETS, FLOW_CACHE_WAYS
from controller.policies import POLICIES, ClusterView, DampingSettings, Policy, make_policy
from controller.policies.damping import NO_DAMPING
from controller.policies.fixed_split import FixedSplit
from sim.builtin_workloads import BUILTIN
from sim.engine import Simulation, SimulationConfig, SimulationResult
from sim.flow_sizes import CdfError, ClippedSizes, FlowSizeDistribution, flow_size_distribution
from sim.pcap_frames import CaptureError
from sim.pcap_source import CaptureTrace
from sim.policy_set import group_same_ring, same_ring_note
from sim.report import plot_loads, summary_table, write_load_csv, write_summary_csv
from sim.switch_model import SWITCH_MODELS
from sim.traffic import TrafficSource
from sim.workload import GeneratedWorkload, WorkloadSpec

GBIT = 1e9 / 8   # bytes/s
MBIT = 1e6 / 8


def register(commands: argparse._SubParsersAction) -> None:
    """`simulate`: the trace-driven simulator's sub-command."""
    parser = commands.add_parser("simulate", help="compare dispatch policies on a capture or a "
                                 "generated workload (trace-driven simulator)")
    parser.set_defaults(handler=run)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("traffic (a capture, or a generated workload)")
    source.add_argument("--pcap", nargs="+", type=Path, metavar="FILE",
                        help="pcap/pcapng captures; several are merged, each starting at time 0")
    source.add_argument("--workload", default="websearch",
                        help=f"flow sizes: a built-in model ({', '.join(BUILTIN)}; parameters in "
                             "docs/policies.md), shared:NAME from $P4DISPATCH_SHARED_DATA/flowsize, or a path "
                             "to a .cdf file (default websearch)")
    source.add_argument("--max-size", type=float, metavar="BYTES",
                        help="clip every flow size to this (the demo's load client clips objects at 2 MB)")
    source.add_argument("--fair-share", action="store_true",
                        help="TCP-like flows: each server's capacity is shared max-min among its flows every "
                             "interval (a flow's --flow-rate is its ceiling), so a busy server slows its flows "
                             "down instead of dropping what they send")
    source.add_argument("--heavy-share", type=float, default=0.0,
                        help="share of the load in very large downloads (pathological mix, e.g. 0.5)")
    source.add_argument("--load", type=float, default=0.8, help="offered load / total capacity (default 0.8)")
    source.add_argument("--duration", type=float, default=30.0, help="seconds of flow arrivals (default 30)")
    source.add_argument("--flow-rate", default="8,200", metavar="LOW,HIGH",
                        help="per-flow sending rate range in Mb/s, log-uniform (default 8,200)")
    source.add_argument("--seed", type=int, default=1)
    source.add_argument("--symmetric", action="store_true", help="capture mode: both directions one flow")
    source.add_argument("--speedup", type=float, default=1.0,
                        help="captures: replay this many times faster (after long gaps are shortened to 1 s)")
    source.add_argument("--copies", type=int, default=1,
                        help="captures: overlay this many copies, started evenly over the trace, each with "
                             "its addresses changed (more clients; default 1)")
    cluster = parser.add_argument_group("cluster and switch")
    cluster.add_argument("--servers", type=int, default=3, help="number of equal servers (default 3)")
    cluster.add_argument("--capacity", metavar="GBPS,...",
                         help="per-server capacity in Gb/s, e.g. 1,1,2 (overrides --servers); "
                              "default 1 Gb/s each, or for captures sized so the trace's 95th-percentile "
                              "second offers --load")
    cluster.add_argument("--buffer-ms", type=float, default=10.0, help="server buffer in ms of capacity")
    cluster.add_argument("--ring-size", type=int, default=4096)
    cluster.add_argument("--poll-interval", type=float, default=0.1, help="counter polling period, s")
    cluster.add_argument("--lag", type=int, default=0, help="extra polling intervals before a ring applies")
    cluster.add_argument("--install-delay", type=float, default=0.02, help="digest to flows entry, s")
    cluster.add_argument("--quiesce", action="append", default=[], metavar="SERVER@TIME",
                         help="stop giving new flows to SERVER from TIME s on (repeatable)")
    cluster.add_argument("--switch-model", default="generations", metavar="MODEL[,MODEL]",
                         help=f"switch model(s): {', '.join(SWITCH_MODELS)} (docs/consistency.md; legacy is "
                              "the one-slot cache before it); several compare in one run (default generations)")
    cluster.add_argument("--cache-timeout", type=float, default=1.0, help="flow cache timeout T_c, s (default 1)")
    cluster.add_argument("--cache-sets", type=int, default=FLOW_CACHE_SETS,
                         help=f"generations model: cache sets, a power of two (default {FLOW_CACHE_SETS}, as the P4)")
    cluster.add_argument("--cache-ways", type=int, default=FLOW_CACHE_WAYS,
                         help=f"generations model: ways per set (default {FLOW_CACHE_WAYS})")
    cluster.add_argument("--churn-cap", default="none", metavar="SHARE[,SHARE]",
                         help="at most this share of the ring changes per write, e.g. 0.05; 'none': no cap; "
                              "several compare in one run (default none)")
    cluster.add_argument("--hysteresis", type=float, default=0.0, metavar="SHARE",
                         help="no ring write while every server is within this share of the ring of its "
                              "target (default 0: any change is written at the next poll)")
    run = parser.add_argument_group("policies and output")
    run.add_argument("--policies", default="round_robin,fb_least,fb_est",
                     help=f"comma-separated, or 'all' (known: {', '.join(POLICIES)}); policies that write "
                          "the same ring on the run's servers are run once, shown as one row")
    run.add_argument("--fixed-shares", metavar="W,...", help="fixed_split's static shares, e.g. 4,1,1")
    run.add_argument("--damping", default=None, metavar="FLOWS,MAX_S,FLOOR",
                     help="fb_est's damping (controller/policies/damping.py): average its target over the time "
                          "FLOWS new flows take (at most MAX_S s), FLOOR of new flows by capacity at the longest; "
                          "'none' turns it off (default: the controller's, "
                          f"{DampingSettings.flows:g},{DampingSettings.max_seconds:g},{DampingSettings.floor:g})")
    run.add_argument("--window", type=float, default=1.0, help="balance metric window, s (default 1)")
    run.add_argument("--out", type=Path, default=Path("results/simulate"),
                     help="directory for load CSVs, load.png and summary.csv (default results/simulate)")
    run.add_argument("--title", help="figure title")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{what}: no numbers in {text!r}")
    return values


def _caps(text: str) -> list[float | None]:
    caps: list[float | None] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        if item.lower() == "none":
            caps.append(None)
            continue
        try:
            cap = float(item)
        except ValueError:
            raise ValueError(f"--churn-cap: expected shares of the ring or 'none', got {item!r}") from None
        if not 0 < cap <= 1:
            raise ValueError(f"--churn-cap: a share of the ring in (0, 1], not {cap}")
        caps.append(cap)
    if not caps:
        raise ValueError(f"--churn-cap: nothing in {text!r}")
    return caps


def _switch_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in models if m not in SWITCH_MODELS]
    if unknown or not models:
        raise ValueError(f"--switch-model: unknown {', '.join(unknown) or 'nothing'} "
                         f"(known: {', '.join(SWITCH_MODELS)})")
    return models


def _damping(text: str | None) -> DampingSettings | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return NO_DAMPING
    values = _floats(text, "--damping")
    if len(values) != 3:
        raise ValueError(f"--damping: expected FLOWS,MAX_SECONDS,FLOOR or 'none', got {text!r}")
    return DampingSettings(*values)


def _policies(args: argparse.Namespace) -> list[Policy]:
    names = list(POLICIES) if args.policies == "all" else [n.strip() for n in args.policies.split(",") if n.strip()]
    damping = _damping(args.damping)
    policies = [make_policy(n, damping) for n in names]
    if args.fixed_shares:
        shares = _floats(args.fixed_shares, "--fixed-shares")
        policies = [FixedSplit(shares) if p.name == "fixed_split" else p for p in policies]
    return policies


def _quiesce(specs: list[str]) -> list[tuple[int, float]]:
    out = []
    for spec in specs:
        server, _, at = spec.partition("@")
        try:
            out.append((int(server), float(at or 0)))
        except ValueError:
            raise ValueError(f"--quiesce: expected SERVER@TIME, got {spec!r}") from None
    return out


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (CaptureError, CdfError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    policies = _policies(args)
    make_source: Callable[[], TrafficSource]
    models = _switch_models(args.switch_model)
    caps = _caps(args.churn_cap)
    if args.load <= 0:
        raise ValueError(f"--load must be positive, not {args.load}")
    if args.speedup <= 0:
        raise ValueError(f"--speedup must be positive, not {args.speedup}")
    if args.pcap and (args.fair_share or args.max_size is not None):
        raise ValueError("--fair-share and --max-size shape generated flows, not captures")
    if args.pcap:
        missing = [str(p) for p in args.pcap if not p.is_file()]
        if missing:
            raise ValueError(f"no such capture: {', '.join(missing)}")
        trace = CaptureTrace(args.pcap, symmetric=args.symmetric, speedup=args.speedup, copies=args.copies)
        if trace.packet_count == 0:
            print(f"{', '.join(map(str, args.pcap))}: no packets to simulate", file=sys.stderr)
            return 0
        if args.capacity:
            capacity = np.array(_floats(args.capacity, "--capacity")) * GBIT
        else:   # real traffic is bursty: size the cluster by its busy seconds (95th percentile)
            busy_rate = float(np.percentile(trace.per_second, 95))
            capacity = np.full(args.servers, busy_rate / args.load / args.servers)
        make_source = lambda: trace   # noqa: E731 (one trace for every run: it keeps its batches)
        duration = trace.duration
        names = ", ".join(p.name for p in args.pcap) if len(args.pcap) <= 3 else f"{len(args.pcap)} captures"
        label = (names + (f", {args.speedup:g}x" if args.speedup != 1 else "")
                 + (f", {args.copies} copies" if args.copies != 1 else ""))
    else:
        capacity = (np.array(_floats(args.capacity, "--capacity")) if args.capacity
                    else np.ones(args.servers)) * GBIT
        low, high = _floats(args.flow_rate, "--flow-rate")[:2]
        sizes: FlowSizeDistribution = flow_size_distribution(args.workload)
        if args.max_size is not None:
            if not args.max_size >= 1:
                raise ValueError(f"--max-size must be at least 1 byte, not {args.max_size}")
            sizes = ClippedSizes(sizes, args.max_size)
        spec = WorkloadSpec(cdf=sizes, offered_rate=args.load * capacity.sum(),
                            duration=args.duration, flow_rate=(low * MBIT, high * MBIT),
                            heavy_share=args.heavy_share, heavy_rate=0.5 * capacity.mean(), seed=args.seed,
                            fair_share=args.fair_share)
        make_source = lambda: GeneratedWorkload(spec)   # noqa: E731
        duration = args.duration
        label = (f"{spec.cdf.name}, load {args.load}" + (f", {args.heavy_share:.0%} heavy" if args.heavy_share else "")
                 + (", fair share" if args.fair_share else ""))
    config = SimulationConfig(capacity=capacity, buffer_seconds=args.buffer_ms / 1000, ring_size=args.ring_size,
                              poll_interval=args.poll_interval, controller_lag=args.lag,
                              install_delay=args.install_delay, cache_timeout=args.cache_timeout,
                              window=args.window, quiesce=_quiesce(args.quiesce), cache_sets=args.cache_sets,
                              cache_ways=args.cache_ways, ring_hysteresis=args.hysteresis)
    view = ClusterView.idle(config.capacity)
    if config.configured_weight is not None:   # always set by SimulationConfig (None only as its argument)
        view.configured_weight = config.configured_weight
    groups = group_same_ring(policies, view, config.ring_size)
    runs = []   # (group, result), every switch model and churn cap for every group of policies
    for model in models:
        for cap in caps:
            for group in groups:
                result = _simulate(replace(config, switch_model=model, ring_max_change=cap), group.policy,
                                   make_source(), duration, args.quiet)
                runs.append((group, replace(result, summary=replace(result.summary, policy=group.label))))
    results = [result for _, result in runs]
    print(f"{label}: {len(capacity)} servers, capacity "
          f"{', '.join(f'{c / MBIT:.4g}' for c in capacity)} Mb/s")
    print(f"switch: ring {args.ring_size} slots, poll {args.poll_interval:g} s, hysteresis {args.hysteresis:g}, "
          f"T_c {args.cache_timeout:g} s, install delay {args.install_delay:g} s; generations cache "
          f"{args.cache_sets} sets x {args.cache_ways} ways; flows {results[0].summary.flows} "
          f"({results[0].summary.flows / duration:,.0f} new/s over {duration:g} s)")
    print(summary_table([r.summary for r in results]))
    note = same_ring_note(groups)
    if note:
        print(f"\n{note}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        several = len(models) * len(caps) > 1
        for group, result in runs:
            name = _slug(result.summary.label) if several else group.policy.name
            write_load_csv(args.out / f"load-{name}.csv", result, capacity, args.poll_interval)
        write_summary_csv(args.out / "summary.csv", [r.summary for r in results])
        plot_loads(args.out / "load.png", results, capacity, args.poll_interval, args.window,
                   args.title or label)
        print(f"wrote {args.out}/load.png, summary.csv and load-<policy>.csv")
    return 0


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in text).strip("-").replace("--", "-")


def _simulate(config: SimulationConfig, policy: Policy, source, duration: float, quiet: bool) -> SimulationResult:
    from tqdm import tqdm

    with tqdm(total=round(duration, 1), desc=f"{policy.name:>20} {config.switch_model}", unit="s",
              disable=quiet or None, leave=False, file=sys.stderr) as bar:
        def progress(now: float) -> None:
            bar.update(max(0.0, min(now, duration) - bar.n))
        # A fresh copy per run: damped and other stateful policies start every run alike.
        return Simulation(replace(config), copy.deepcopy(policy)).run(source, progress)

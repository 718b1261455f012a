"""`demo` and `demo-dataplane`: the emulated cluster and the data plane alone, on BMv2."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the main job: an emulated cluster in Mininet with BMv2, "
                               "the controller and real traffic; live table, plot, JSON summary (root)")
    demo.set_defaults(handler=_demo)
    demo.add_argument("--topo", choices=["servers", "capture"], default="servers")
    demo.add_argument("--policy", default="fb_est", help="dispatch policy (default fb_est)")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds of client arrivals (servers)")
    demo.add_argument("--rate", type=float, default=30.0, help="new connections/s over all clients")
    demo.add_argument("--clients", type=int, default=4)
    demo.add_argument("--capacities", default="20,10,5", help="backend capacities, Mbit/s (default 20,10,5)")
    demo.add_argument("--cdf", default="fb_hadoop", help="object sizes: a built-in model (fb_hadoop, websearch, "
                      "ali_storage), shared:NAME from $P4DISPATCH_SHARED_DATA, or a .cdf file (default fb_hadoop)")
    demo.add_argument("--max-bytes", type=int, default=2_000_000, help="largest object")
    demo.add_argument("--probes", type=int, default=3, help="capture nodes (capture)")
    demo.add_argument("--captures", help="comma-separated capture files to replay (capture); bare names are "
                      "looked up in $P4DISPATCH_SHARED_DATA/pcaps; default: captures generated with scapy into --out")
    demo.add_argument("--replay-pps", type=int, default=500, help="tcpreplay rate (capture)")
    demo.add_argument("--out", default="results/demo", help="plot and summary go here")
    demo.add_argument("--api-port", type=int, default=9180, help="controller API and metrics port")

    dataplane = commands.add_parser("demo-dataplane", help="load the dispatcher into BMv2 with a sample "
                                    "configuration and open flows through it (root, BMv2)")
    dataplane.set_defaults(handler=_demo_dataplane)
    dataplane.add_argument("--flows", type=int, default=60, help="TCP flows to open (default 60)")


def _demo(args: argparse.Namespace) -> int:
    from controller.policies import POLICIES
    from sim.flow_sizes import CdfError, flow_size_distribution
    from topo.cluster_demo import DemoOptions, run

    if args.policy not in POLICIES:
        raise SystemExit(f"demo: --policy: expected one of {', '.join(sorted(POLICIES))}, got {args.policy!r}")
    try:
        flow_size_distribution(args.cdf)   # a bad name fails here, not inside an emulated host
    except CdfError as exc:
        raise SystemExit(f"demo: --cdf: {exc}") from None
    try:
        capacities = tuple(float(c) for c in args.capacities.split(","))
    except ValueError:
        raise SystemExit(f"demo: --capacities: expected numbers like 20,10,5, got {args.capacities!r}") from None
    return run(DemoOptions(
        topo=args.topo, policy=args.policy, duration=args.duration, rate=args.rate,
        clients=args.clients, capacities=capacities, cdf=args.cdf, max_bytes=args.max_bytes,
        probes=args.probes, replay_pps=args.replay_pps, out=Path(args.out), api_port=args.api_port,
        captures=tuple(c.strip() for c in args.captures.split(",") if c.strip()) if args.captures else ()))


def _demo_dataplane(args: argparse.Namespace) -> int:
    from topo import dataplane_demo
    return dataplane_demo.run(args.flows)

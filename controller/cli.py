"""`python -m controller run | status | backends ... | flows`: the operator's commands.

`run` is the controller itself; the others talk to a running controller's HTTP API
(controller/admin_api.py), by default at the address in the config's [api] section.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from controller.status import ControllerStatus

DEFAULT_API = "http://127.0.0.1:9180"


def register(commands: argparse._SubParsersAction) -> None:
    """The runtime's sub-commands: the controller itself and the commands that talk to it."""
    run = commands.add_parser("run", help="run the controller against a switch (config file)")
    run.set_defaults(handler=run_command)
    run.add_argument("--config", required=True, help="TOML configuration (see configs/sample.toml)")
    run.add_argument("--election-id", type=int, help="override [switch] election_id (backups: lower)")
    run.add_argument("--grpc-address", help="override [switch] grpc_address")
    run.add_argument("--api-port", type=int, help="override [api] port (0: any free port)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    for name, text in (("status", "backends, flows and rates of a running controller"),
                       ("flows", "installed flows of a running controller")):
        p = commands.add_parser(name, help=text)
        p.set_defaults(handler=run_command)
        p.add_argument("--api", default=DEFAULT_API, help=f"controller API (default {DEFAULT_API})")
        if name == "status":
            p.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
            p.add_argument("--json", action="store_true", help="print the raw JSON")
        else:
            p.add_argument("--limit", type=int, default=50)

    backends = commands.add_parser("backends", help="add, remove, quiesce, drain or activate a backend")
    backends.set_defaults(handler=run_command)
    backends.add_argument("--api", default=DEFAULT_API, help=f"controller API (default {DEFAULT_API})")
    actions = backends.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a backend to a service")
    add.add_argument("--service", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--id", type=int, required=True)
    add.add_argument("--port", type=int, required=True, help="switch port")
    add.add_argument("--mac", required=True)
    add.add_argument("--address")
    add.add_argument("--capacity-mbps", type=float, default=1000.0)
    add.add_argument("--weight", type=float, default=1.0)
    for action, text in (("remove", "out of the ring, its entries deleted (drain first)"),
                         ("quiesce", "no new flows; its flows continue"),
                         ("drain", "no new flows; removed when its last flow ends"),
                         ("activate", "back in the ring")):
        p = actions.add_parser(action, help=text)
        p.add_argument("name")


def run_command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    try:
        if args.command == "status":
            return _status(args)
        if args.command == "flows":
            return _flows(args)
        if args.command == "backends":
            return _backends(args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


# ---- run --------------------------------------------------------------------------------

def _run(args: argparse.Namespace) -> int:
    from controller.admin_api import AdminApi
    from controller.app import Controller
    from controller.config import ConfigError, load_config

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    switch = config.switch.model_copy(update={k: v for k, v in (
        ("election_id", args.election_id), ("grpc_address", args.grpc_address)) if v is not None})
    api = config.api.model_copy(update={"port": args.api_port} if args.api_port is not None else {})
    config = config.model_copy(update={"switch": switch, "api": api})
    try:
        controller = Controller(config)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: cannot load the P4 program: {exc}", file=sys.stderr)
        return 2
    try:
        admin = AdminApi(controller, config.api.address, config.api.port)
    except OSError as exc:
        print(f"error: cannot listen on {config.api.address}:{config.api.port}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    admin.start()
    logging.getLogger("controller").info("API and metrics at %s (switch %s, election id %d)",
                                         admin.url, switch.grpc_address, switch.election_id)
    try:
        controller.run(stop)
    finally:
        admin.stop()
    return 0


# ---- talking to a running controller ---------------------------------------------------------

class ApiError(RuntimeError):
    pass


def api_call(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json"},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise ApiError(message) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(f"no controller API at {base} ({reason}); is `p4dispatch run` up?") from None


def status_table(status: ControllerStatus) -> Table:
    caption = f"role {status.role} · switch {status.switch}"
    if status.flows is not None:
        flows = status.flows
        latency = flows.install_latency_ms
        caption += (f" · {flows.active} flows, {flows.pending} pending, {flows.overflow} waiting for room"
                    f" · {flows.digests_per_s or 0:.0f} digests/s, {flows.writes_per_s or 0:.0f} writes/s"
                    + (f" · entry p50 {latency.p50:.1f} ms p99 {latency.p99:.1f} ms" if latency else ""))
    if status.events:
        caption += (f" · ring generation {status.ring_generation}, cache collisions "
                    f"{status.events.get('cache_collision', 0)}, held {status.events.get('generation_held', 0)}")
    table = Table(title="flow dispatcher", caption=caption)
    for column in ("service", "backend", "state", "port", "flows", "load Mbit/s", "estimated",
                   "capacity", "ring share", "packets"):
        table.add_column(column, justify="left" if column in ("service", "backend", "state") else "right")
    for service in status.services:
        for b in service.backends:
            est = b.estimated_mbps
            table.add_row(f"{service.name} ({service.policy})", b.name, b.state, str(b.port),
                          str(b.flows), f"{b.load_mbps:.2f}", "-" if est is None else f"{est:.2f}",
                          f"{b.capacity_mbps:g}", f"{b.ring_share:.1%}", str(b.packets))
    return table


def fetch_status(api: str) -> ControllerStatus:
    return ControllerStatus.model_validate(api_call(api, "/api/status"))


def _status(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(api_call(args.api, "/api/status"), indent=2))
        return 0
    status = fetch_status(args.api)
    console = Console()
    if not args.watch:
        console.print(status_table(status))
        return 0
    with Live(status_table(status), console=console, refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(1)
                live.update(status_table(fetch_status(args.api)))
        except KeyboardInterrupt:
            pass
    return 0


def _flows(args: argparse.Namespace) -> int:
    flows = api_call(args.api, f"/api/flows?limit={args.limit}")
    table = Table(title=f"installed flows (first {args.limit})")
    for column in ("source", "destination", "protocol", "backend", "stats slot"):
        table.add_column(column)
    for f in flows:
        table.add_row(f["src"], f["dst"], str(f["protocol"]), f["backend"], str(f["stats_slot"]))
    Console().print(table)
    return 0


def _backends(args: argparse.Namespace) -> int:
    if args.action == "add":
        backend = {k: v for k, v in (("name", args.name), ("id", args.id), ("port", args.port),
                                     ("mac", args.mac), ("address", args.address),
                                     ("capacity_mbps", args.capacity_mbps), ("weight", args.weight))
                   if v is not None}
        result = api_call(args.api, "/api/backends", {"service": args.service, "backend": backend})
    else:
        result = api_call(args.api, f"/api/backends/{args.name}/{args.action}", {})
    print(json.dumps(result))
    return 0

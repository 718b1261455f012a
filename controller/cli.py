"""`python -m controller run | status | backends ... | flows | nd`: the operator's commands.

`run` is the controller itself; the others talk to a running controller's HTTP API
(controller/admin_api.py), by default at the address in the config's [api] section. When
the API wants a token, they send it from `--token-file` or the P4DISPATCH_API_TOKEN
environment variable (a token on the command line would show in every `ps` listing).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

from controller.sessions import report as sessions
from controller.status import BackendHealthStatus, ControllerStatus

DEFAULT_API = "http://127.0.0.1:9180"
TOKEN_ENV = "P4DISPATCH_API_TOKEN"


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=DEFAULT_API, help=f"controller API (default {DEFAULT_API})")
    parser.add_argument("--token-file", help=f"file holding the API's bearer token (default: ${TOKEN_ENV}, "
                        "else none)")


def register(commands: argparse._SubParsersAction) -> None:
    """The runtime's sub-commands: the controller itself, the commands that talk to it and
    the capture analysis of signalling (`sessions`)."""
    run = commands.add_parser("run", help="run the controller against a switch (config file)")
    run.set_defaults(handler=run_command)
    run.add_argument("--config", required=True, help="TOML configuration (see configs/sample.toml)")
    run.add_argument("--election-id", type=int, help="override [switch] election_id (backups: lower)")
    run.add_argument("--grpc-address", help="override [switch] grpc_address")
    run.add_argument("--api-port", type=int, help="override [api] port (0: any free port)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    for name, text in (("status", "backends, health, flows, rates and admission of a running controller"),
                       ("flows", "installed flows of a running controller")):
        p = commands.add_parser(name, help=text)
        p.set_defaults(handler=run_command)
        _api_arguments(p)
        if name == "status":
            p.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
            p.add_argument("--json", action="store_true", help="print the raw JSON")
        else:
            p.add_argument("--limit", type=int, default=50)

    backends = commands.add_parser("backends", help="add, remove, quiesce, drain or activate a backend")
    backends.set_defaults(handler=run_command)
    _api_arguments(backends)
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

    switches = commands.add_parser("switches", help="several switches: take one out of the ECMP group "
                                   "(maintenance) or put it back in, each after the freeze")
    switches.set_defaults(handler=run_command)
    switch_actions = switches.add_subparsers(dest="action", required=True)
    for action, text in (("out", "out of the ECMP group once every flow is replicated; stays in sync"),
                         ("in", "back into the ECMP group")):
        p = switch_actions.add_parser(action, help=text)
        p.add_argument("name")
        _api_arguments(p)

    nd = commands.add_parser("nd", help="show or change a service's nd manager at run time (proportions, "
                             "smoothing, sensitivity, host limit)")
    nd.set_defaults(handler=run_command)
    _api_arguments(nd)
    nd.add_argument("service")
    nd.add_argument("--proportions", type=float, nargs=4, metavar=("ACTIVE", "NEW", "HOST", "FORWARD"),
                    help="weights of the metrics in the load index")
    nd.add_argument("--smoothing", type=float, help="(0, 1]: new = old + smoothing * (target - old)")
    nd.add_argument("--sensitivity", type=float, help="rewrite only when this share of weight moved")
    nd.add_argument("--host-limit", type=float, help="quiesce a server whose host utilisation exceeds this")
    nd.add_argument("--clear-host-limit", action="store_true", help="no host limit")
    nd.add_argument("--cooldown", type=float, dest="cooldown_s", help="seconds under the limit before it returns")

    sessions.register(commands)


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
        if args.command == "nd":
            return _nd(args)
        if args.command == "switches":
            print(json.dumps(api_call(args.api, f"/api/switches/{args.name}/{args.action}", {},
                                      token=api_token(args.token_file))))
            return 0
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


# ---- run --------------------------------------------------------------------------------

def _run(args: argparse.Namespace) -> int:
    from controller.admin_api import AdminApi
    from controller.app import Controller
    from controller.cluster_app import ClusterController
    from controller.config import ConfigError, load_config
    from controller.health_control import HealthStartError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    api = config.api.model_copy(update={"port": args.api_port} if args.api_port is not None else {})
    if config.several_switches:
        if args.grpc_address is not None:
            print("error: --grpc-address names one switch; the configuration has `[[switches]]`", file=sys.stderr)
            return 2
        election = {"election_id": args.election_id} if args.election_id is not None else {}
        config = config.model_copy(update={"switches": [s.model_copy(update=election) for s in config.switches],
                                           "api": api})
    else:
        switch = config.switch.model_copy(update={k: v for k, v in (
            ("election_id", args.election_id), ("grpc_address", args.grpc_address)) if v is not None})
        config = config.model_copy(update={"switch": switch, "api": api})
    try:
        controller = ClusterController(config) if config.several_switches else Controller(config)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: cannot load the P4 program: {exc}", file=sys.stderr)
        return 2
    try:
        token = config.api.bearer_token()
    except ValueError as exc:      # the token file went away since the config was checked
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        admin = AdminApi(controller, config.api.address, config.api.port, token=token)
    except OSError as exc:
        print(f"error: cannot listen on {config.api.address}:{config.api.port}: {exc}", file=sys.stderr)
        return 2
    try:
        controller.health.start()
    except HealthStartError as exc:
        admin.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    admin.start()
    logging.getLogger("controller").info("API and metrics at %s%s (%s %s, election id %d)", admin.url,
                                         " (bearer token required)" if token else "",
                                         "switches" if config.several_switches else "switch",
                                         ", ".join(d.grpc_address for d in config.dispatchers),
                                         config.dispatchers[0].election_id)
    try:
        controller.run(stop)
    finally:
        admin.stop()
    return 0


# ---- talking to a running controller ---------------------------------------------------------

class ApiError(RuntimeError):
    pass


def api_token(token_file: str | None) -> str | None:
    """The bearer token from --token-file, else from $P4DISPATCH_API_TOKEN, else None."""
    if token_file:
        try:
            return open(token_file).read().strip()
        except OSError as exc:
            raise ApiError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    return os.environ.get(TOKEN_ENV) or None


def api_call(base: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base.rstrip("/") + path, data=data, headers=headers,
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
    if status.health is not None and status.health.listening:
        h = status.health
        dropped = sum(h.dropped.values())
        caption += (f" · health on {h.listening}: {h.messages.get('heartbeat', 0)} heartbeats, "
                    f"{h.messages.get('report', 0)} reports, {dropped} dropped")
    if status.sessions is not None:
        se = status.sessions
        caption += (f" · sessions {se.sessions} ({se.by_state.get('started', 0)} started), "
                    f"{se.announced_entries} announced entries, {se.hits} hits, {se.expired} expired, "
                    f"{se.ended} ended, {sum(se.parse_errors.values())} parse errors")
    for service in status.services:
        a = service.admission
        if a is not None:
            caption += (f" · {service.name} admission {a.level} p {a.drop_prob:.2f} (load {a.load:.2f}, "
                        f"T2 {a.t2:.2f}, T3 {a.t3:.2f})")
    table = Table(title="flow dispatcher", caption=caption)
    for column in ("service", "backend", "state", "health", "port", "flows", "load Mbit/s", "estimated",
                   "served", "load from", "capacity", "ring share", "packets"):
        table.add_column(column, justify="left" if column in ("service", "backend", "state", "health",
                                                              "load from") else "right")
    for service in status.services:
        for b in service.backends:
            est, served = b.estimated_mbps, b.served_mbps
            table.add_row(f"{service.name} ({service.policy})", b.name, b.state, health_cell(b.health),
                          str(b.port), str(b.flows), f"{b.load_mbps:.2f}", "-" if est is None else f"{est:.2f}",
                          "-" if served is None else f"{served:.2f}", b.load_source,
                          f"{b.capacity_mbps:g}", f"{b.ring_share:.1%}", str(b.packets))
    return table


def health_cell(h: BackendHealthStatus | None) -> str:
    if h is None or not h.watched:
        return "-"
    text = f"{h.state} {h.for_s:.0f} s"
    if h.state != "up":
        text += f": {h.reason}"
    return text


def fetch_status(api: str, token: str | None = None) -> ControllerStatus:
    return ControllerStatus.model_validate(api_call(api, "/api/status", token=token))


def _status(args: argparse.Namespace) -> int:
    token = api_token(args.token_file)
    if args.json:
        print(json.dumps(api_call(args.api, "/api/status", token=token), indent=2))
        return 0
    status = fetch_status(args.api, token)
    console = Console()
    if not args.watch:
        console.print(status_table(status))
        return 0
    with Live(status_table(status), console=console, refresh_per_second=2) as live:
        try:
            while True:
                time.sleep(1)
                live.update(status_table(fetch_status(args.api, token)))
        except KeyboardInterrupt:
            pass
    return 0


def _flows(args: argparse.Namespace) -> int:
    flows = api_call(args.api, f"/api/flows?limit={args.limit}", token=api_token(args.token_file))
    table = Table(title=f"installed flows (first {args.limit})")
    for column in ("source", "destination", "protocol", "backend", "stats slot"):
        table.add_column(column)
    for f in flows:
        table.add_row(f["src"], f["dst"], str(f["protocol"]), f["backend"], str(f["stats_slot"]))
    Console().print(table)
    return 0


def _backends(args: argparse.Namespace) -> int:
    token = api_token(args.token_file)
    if args.action == "add":
        backend = {k: v for k, v in (("name", args.name), ("id", args.id), ("port", args.port),
                                     ("mac", args.mac), ("address", args.address),
                                     ("capacity_mbps", args.capacity_mbps), ("weight", args.weight))
                   if v is not None}
        result = api_call(args.api, "/api/backends", {"service": args.service, "backend": backend}, token=token)
    else:
        result = api_call(args.api, f"/api/backends/{args.name}/{args.action}", {}, token=token)
    print(json.dumps(result))
    return 0


def nd_change(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line changes (the API's body); empty: just show them."""
    change: dict[str, Any] = {k: v for k, v in (("proportions", args.proportions), ("smoothing", args.smoothing),
                                                ("sensitivity", args.sensitivity), ("host_limit", args.host_limit),
                                                ("cooldown_s", args.cooldown_s)) if v is not None}
    if args.clear_host_limit:
        change["clear_host_limit"] = True
    return change


def _nd(args: argparse.Namespace) -> int:
    token = api_token(args.token_file)
    change = nd_change(args)
    path = f"/api/services/{args.service}/nd"
    result = api_call(args.api, path, change, token=token) if change else api_call(args.api, path, token=token)
    print(json.dumps(result))
    return 0

"""`python -m agent` / `p4dispatch agent`: run the backend agent until SIGINT or SIGTERM.

Signals: SIGINT, SIGTERM stop cleanly (the socket is closed, the exit status is 0);
SIGUSR1 announces a planned failure `--planned-notice` seconds ahead; SIGUSR2 withdraws it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from agent.agent import Agent, AgentSettings
from agent.app_check import AppCheck, CheckKind
from agent.host_sampler import HostSampler
from controller.health.messages import MIN_PERIOD_S, load_key


def register(commands: argparse._SubParsersAction) -> None:
    """`agent`: the backend agent (heartbeats and load reports to the controller)."""
    parser = commands.add_parser("agent", help="run the backend agent: heartbeats and load reports "
                                 "to the controller over UDP")
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--controller", required=True, metavar="HOST:PORT",
                        help="the controller's health listener ([health] listen_address and listen_port)")
    parser.add_argument("--host-id", type=int, required=True,
                        help="this server's host id (the backend's id unless [[health.agents]] says otherwise)")
    parser.add_argument("--period", type=float, default=1.0, help="seconds between heartbeats (default 1)")
    parser.add_argument("--key-file", help="HMAC key shared with the controller ([health] key_file)")
    parser.add_argument("--interface", help="the service interface whose sent bytes are reported "
                        "(default: all but loopback)")
    parser.add_argument("--service-port", type=int, help="the service's TCP port: connections to it are "
                        "counted, and the application check uses it")
    check = parser.add_argument_group("application check (sets the heartbeat's application-down flag)")
    check.add_argument("--check", choices=("none", "tcp", "http"),
                       help="tcp: the port accepts a connection; http: a GET gets --check-status "
                       "(default: tcp with --service-port, else none)")
    check.add_argument("--check-address", default="127.0.0.1")
    check.add_argument("--check-port", type=int, help="default: --service-port")
    check.add_argument("--check-path", default="/")
    check.add_argument("--check-status", type=int, default=200)
    check.add_argument("--check-timeout", type=float, help="seconds (default: half the period, at most 0.5)")
    parser.add_argument("--cpu", choices=("host", "service"), default="host",
                        help="the CPU utilisation reported: the host's (default), or the service's, i.e. the "
                        "processes listening on --service-port (for hosts sharing a machine's /proc/stat: "
                        "Mininet hosts, containers)")
    parser.add_argument("--service-cpus", type=float, default=1.0,
                        help="with --cpu service: the CPUs the service may use (100 %% = all of them; default 1)")
    parser.add_argument("--metric-command", help="a command whose first printed number is reported")
    parser.add_argument("--planned-failure-in", type=float, metavar="SECONDS",
                        help="announce a planned failure this far ahead from the start")
    parser.add_argument("--planned-notice", type=float, default=10.0, metavar="SECONDS",
                        help="how far ahead SIGUSR1 announces a planned failure (default 10)")
    parser.add_argument("-v", "--verbose", action="store_true")


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT, the host resolved to an address."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]")
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc.strerror}") from None
    address = info[0][4]
    return str(address[0]), int(address[1])


def build(args: argparse.Namespace) -> Agent:
    """The agent the arguments describe; ValueError with a clear message otherwise."""
    if args.period < MIN_PERIOD_S:
        raise ValueError(f"--period must be at least {MIN_PERIOD_S} s")
    key = load_key(args.key_file) if args.key_file else None
    settings = AgentSettings(parse_address(args.controller), args.host_id, args.period, key)
    kind: CheckKind = args.check or ("tcp" if args.service_port else "none")
    port = args.check_port or args.service_port
    if kind != "none" and port is None:
        raise ValueError("--check tcp or http needs --check-port or --service-port")
    timeout = args.check_timeout if args.check_timeout is not None else min(0.5, args.period / 2)
    check = AppCheck(kind, args.check_address, port or 0, args.check_path, args.check_status, timeout)
    if args.cpu == "service" and args.service_port is None:
        raise ValueError("--cpu service needs --service-port")
    sampler = HostSampler(args.interface, args.service_port, args.metric_command, command_timeout_s=timeout,
                          cpu=args.cpu, service_cpus=args.service_cpus)
    return Agent(settings, sampler.sample, check)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        agent = build(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: agent.announce_planned_failure(args.planned_notice))
    signal.signal(signal.SIGUSR2, lambda *_: agent.withdraw_planned_failure())
    if args.planned_failure_in is not None:
        agent.announce_planned_failure(args.planned_failure_in)
    address, port = agent.settings.controller
    print(f"agent: host {args.host_id} sending to {address}:{port} every {args.period} s", flush=True)
    try:
        agent.run(stop)
    finally:
        agent.close()
    print(f"agent: stopped after {agent.sent} messages", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))

"""`python -m controller sessions --pcap FILE`: the sessions and announced flows of a capture."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from controller.sessions.capture import CaptureReport, analyse
from controller.sessions.model import Announcement, Protocol
from controller.sessions.tracker import DEFAULT_PORTS

PROTOCOLS: tuple[Protocol, ...] = ("sip", "rtsp", "ftp")


def parse_ports(values: list[str] | None) -> dict[Protocol, tuple[int, ...]]:
    """--ports sip=5060,5080 --ports rtsp=554: each replaces that protocol's default ports."""
    ports: dict[Protocol, tuple[int, ...]] = dict(DEFAULT_PORTS)
    for value in values or []:
        name, eq, numbers = value.partition("=")
        protocol = name.strip().lower()
        if not eq or protocol not in PROTOCOLS:
            raise ValueError(f"--ports {value!r}: expected PROTOCOL=PORT[,PORT...] with PROTOCOL one of "
                             f"{', '.join(PROTOCOLS)}")
        try:
            chosen = tuple(int(p) for p in numbers.split(",") if p.strip())
        except ValueError:
            raise ValueError(f"--ports {value!r}: ports are numbers") from None
        if any(not 0 < p <= 65535 for p in chosen):
            raise ValueError(f"--ports {value!r}: ports are 1-65535")
        ports[protocol] = chosen
    return ports


def unique_announcements(report: CaptureReport) -> list[tuple[Announcement, int]]:
    """Each announced flow once (retransmissions and repeated offers fold), with how often it was seen."""
    seen: Counter[tuple] = Counter()
    first: dict[tuple, Announcement] = {}
    for a in report.announcements:
        key = (a.protocol, a.signalling, a.session, a.address, a.port, a.transport, a.kind, a.announcer)
        seen[key] += 1
        first.setdefault(key, a)
    return [(first[k], seen[k]) for k in first]


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("sessions", help="the sessions and announced flows in a capture (SIP, RTSP, FTP)")
    p.set_defaults(handler=sessions_command)
    p.add_argument("--pcap", required=True, help="pcap or pcapng file")
    p.add_argument("--json", action="store_true", help="one JSON object per line per announced flow")
    defaults = " ".join(f"{k}={','.join(map(str, v))}" for k, v in DEFAULT_PORTS.items())
    p.add_argument("--ports", action="append", metavar="PROTOCOL=PORT[,PORT...]",
                   help=f"signalling ports to inspect, per protocol (default {defaults})")


def sessions_command(args: argparse.Namespace) -> int:
    try:
        ports = parse_ports(args.ports)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = analyse(args.pcap, ports)
    if report.error is not None and report.frames == 0:
        print(f"error: {report.error}", file=sys.stderr)
        return 2
    flows = unique_announcements(report)
    if args.json:
        for a, count in flows:
            print(json.dumps({**a.as_json(), "times_seen": count}))
    else:
        _print_table(report, flows)
    errors = sum(report.stats.errors.values())
    summary = (f"{report.path}: {report.frames} frames, {report.signalling_packets} signalling packets, "
               f"{len({(a.protocol, a.signalling, a.session) for a, _ in flows})} sessions, {len(flows)} announced "
               f"flows, {len(report.ends)} session ends, {errors} parse errors")
    if errors:
        summary += " (" + ", ".join(f"{k} {v}" for k, v in sorted(report.stats.errors.items())) + ")"
    print(summary, file=sys.stderr)
    if report.error is not None:
        print(f"error: {report.error} (the {report.frames} frames before it were analysed)", file=sys.stderr)
        return 1
    return 0


def _print_table(report: CaptureReport, flows: list[tuple[Announcement, int]]) -> None:
    """Sessions, each followed by the flows it announced."""
    ended = {(e.protocol, e.signalling, e.session): e.reason for e in report.ends}
    closed = {(e.protocol, e.signalling): e.reason for e in report.ends if not e.session}
    sessions: dict[tuple, list[tuple[Announcement, int]]] = {}
    for a, count in flows:
        sessions.setdefault((a.protocol, a.signalling, a.session), []).append((a, count))
    for (protocol, signalling, session), announced in sessions.items():
        src, dst, proto, sport, dport = signalling
        end = ended.get((protocol, signalling, session)) or closed.get((protocol, signalling))
        print(f"{protocol} {src}:{sport} -> {dst}:{dport}/{'tcp' if proto == 6 else 'udp'}"
              + (f" session {session}" if session else "") + (f" (ended: {end})" if end else ""))
        for a, count in announced:
            span = f"-{a.port + a.port_count - 1}" if a.port_count > 1 else ""
            print(f"    {a.address}:{a.port}{span}/{a.transport}" + (f" {a.media}" if a.media else "")
                  + f" {a.kind} by {a.announcer}" + (f", peer {a.peer}" if a.peer else "")
                  + (f", seen {count} times" if count > 1 else ""))

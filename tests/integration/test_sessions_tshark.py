"""`sessions --pcap` agrees with tshark's own SIP/SDP, RTSP and FTP decoding on every
SIP/RTSP/FTP capture of the shared corpus: the announced endpoints, as sets of
(protocol, address, port)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sim.shared_data import shared_data_dir, shared_data_reason

REPO = Path(__file__).resolve().parents[2]
MISSING = shared_data_reason("pcaps")
PCAPS = (shared_data_dir() / "pcaps") if MISSING is None else None
# A cheap superset test for signalling in a file's bytes; tshark then decides.
MARKERS = re.compile(rb"SIP/2\.0|RTSP/\d\.\d|PASV\r?\n|EPSV|PORT \d|EPRT |227 Entering|229 Entering|USER [!-~]+\r\n")
EXPECTED = {"sip.pcap", "rtsp.pcap", "ftp.pcap", "ftp-start-tls.pcap"}   # at least these are in the corpus

pytestmark = [pytest.mark.skipif(MISSING is not None, reason=f"no capture corpus: {MISSING}"),
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")]


def tshark(path: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    command = ["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-E", "separator=\t",
               "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in fields:
        command += ["-e", f]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def _split(value: str) -> list[str]:
    return [v for v in value.split("|") if v]


def _utf8(hex_payload: str) -> bool:
    try:
        bytes.fromhex(hex_payload).decode("utf-8")
    except ValueError:
        return False
    return True


Endpoints = set[tuple[str, str, int]]


def tshark_endpoints(path: Path) -> tuple[Endpoints, Endpoints]:
    """What tshark decodes, and the part of it from SIP messages that are not UTF-8 (RFC 3261
    says they are): tshark reads those anyway, the sessions parser counts them as malformed
    (sip_encoding) and announces nothing from them, by design."""
    found: Endpoints = set()
    not_utf8: Endpoints = set()
    # SIP: each SDP media port with its media-level c= address, else the session-level one.
    for addresses, ports, udp_payload in tshark(path, "sip and sdp", ["sdp.connection_info.address",
                                                                      "sdp.media.port", "udp.payload"]):
        target = found if _utf8(udp_payload) else not_utf8
        addresses_, ports_ = _split(addresses), _split(ports)
        for i, port in enumerate(ports_):
            if len(addresses_) == len(ports_):
                address = addresses_[i]
            elif len(addresses_) == len(ports_) + 1:
                address = addresses_[i + 1]
            elif addresses_:
                address = addresses_[0]
            else:
                continue
            if int(port) and address not in ("0.0.0.0", "::"):
                target.add(("sip", address, int(port)))
    # RTSP: the Transport header of SETUP requests and replies.
    for src, dst, _method, status, transport in tshark(path, "rtsp.transport", ["ip.src", "ip.dst", "rtsp.method",
                                                                               "rtsp.status", "rtsp.transport"]):
        reply = bool(status)
        if reply and not status.startswith("2"):
            continue
        client, server = (dst, src) if reply else (src, dst)
        for spec in _split(transport.replace(",", "|")):
            params = dict(p.partition("=")[::2] for p in spec.split(";"))
            if "interleaved" in params:
                continue
            if "client_port" in params:
                found.add(("rtsp", params.get("destination") or client, int(params["client_port"].split("-")[0])))
            if "server_port" in params and reply:
                found.add(("rtsp", params.get("source") or server, int(params["server_port"].split("-")[0])))
    # FTP: PORT, EPRT, 227 and 229 as tshark's FTP dissector reads them.
    for row in tshark(path, "ftp.active.port or ftp.passive.port or ftp.eprt.port or ftp.epsv.port",
                      ["ftp.active.cip", "ftp.active.port", "ftp.passive.ip", "ftp.passive.port", "ftp.eprt.ip",
                       "ftp.eprt.ipv6", "ftp.eprt.port", "ftp.epsv.ip", "ftp.epsv.ipv6", "ftp.epsv.port"]):
        for address, port in ((row[0], row[1]), (row[2], row[3]), (row[4] or row[5], row[6]),
                              (row[7] or row[8], row[9])):
            if address and port:
                found.add(("ftp", address, int(port)))
    return found, not_utf8 - found


def signalling_captures() -> list[Path]:
    assert PCAPS is not None
    candidates = [p for p in sorted(PCAPS.iterdir()) if p.is_file() and MARKERS.search(p.read_bytes())]
    return [p for p in candidates if tshark(p, "sip or rtsp or ftp", ["frame.number"])]


def ours(path: Path) -> tuple[Endpoints, int, str]:
    result = subprocess.run([sys.executable, "-m", "controller", "sessions", "--pcap", str(path), "--json"],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    flows = [json.loads(line) for line in result.stdout.splitlines()]
    for f in flows:
        assert f["protocol"] in ("sip", "rtsp", "ftp") and isinstance(f["signalling"], list)
        assert len(f["signalling"]) == 5 and 0 < f["port"] <= 65535
    return {(f["protocol"], f["address"], f["port"]) for f in flows}, len(flows), result.stderr


def test_sessions_agree_with_tshark_on_every_signalling_capture():
    captures = signalling_captures()
    assert {p.name for p in captures} >= EXPECTED, [p.name for p in captures]
    lines = []
    for path in captures:
        expected, not_utf8 = tshark_endpoints(path)
        got, flows, summary = ours(path)
        lines.append(f"{path.name}: tshark {len(expected)} endpoints, sessions {len(got)} endpoints "
                     f"({flows} announced flows), agreed {len(expected & got)}"
                     + (f"; {len(not_utf8)} more from non-UTF-8 SIP left out by design" if not_utf8 else ""))
        assert got == expected, (path.name, sorted(expected - got), sorted(got - expected))
        if not_utf8:
            assert "sip_encoding" in summary, summary
    print("\n".join(lines))

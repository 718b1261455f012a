"""Captures made with scapy for the capture_query tests, and the tools' whole-file answers.

The HTTP requests are cut across two TCP segments, so tshark finds `http.request` only by
reassembling the connection: a chunk that split a connection would lose the request."""

from __future__ import annotations

import io
import random
import subprocess
from collections.abc import Sequence
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap, wrpcapng

from capture_query.engine import ChunkTask, run_chunk
from capture_query.output import OutputSink
from capture_query.store import Store
from capture_query.tools import make_query


def http_flow(k: int, t0: float) -> list:
    client, server = f"10.0.{k // 200}.{k % 200 + 1}", "192.0.2.80"
    sport = 40000 + k
    head = f"GET /{k} HTTP/1.1\r\nHo".encode()
    tail = f"st: host{k}.example\r\nUser-Agent: t\r\n\r\n".encode()
    c2s = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=client, dst=server)
    s2c = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src=server, dst=client)
    packets = [
        c2s / TCP(sport=sport, dport=80, flags="S", seq=1000),
        s2c / TCP(sport=80, dport=sport, flags="SA", seq=5000, ack=1001),
        c2s / TCP(sport=sport, dport=80, flags="A", seq=1001, ack=5001),
        c2s / TCP(sport=sport, dport=80, flags="PA", seq=1001, ack=5001) / head,
        c2s / TCP(sport=sport, dport=80, flags="PA", seq=1001 + len(head), ack=5001) / tail,
        s2c / TCP(sport=80, dport=sport, flags="PA", seq=5001, ack=1001 + len(head) + len(tail))
        / b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ]
    for n, p in enumerate(packets):
        p.time = t0 + n * 0.01
    return packets


def dns_flow(k: int, t0: float) -> list:
    q = Ether() / IP(src="10.9.0.1", dst="9.9.9.9") / UDP(sport=20000 + k, dport=53) / DNS(
        id=k, qd=DNSQR(qname=f"q{k}.example"))
    r = Ether() / IP(src="9.9.9.9", dst="10.9.0.1") / UDP(sport=53, dport=20000 + k) / DNS(
        id=k, qr=1, qd=DNSQR(qname=f"q{k}.example"))
    q.time, r.time = t0, t0 + 0.003
    return [q, r]


def generated_packets(flows: int = 60, seed: int = 1) -> list:
    """Interleaved HTTP and DNS flows, every packet at its own time, in time order."""
    rng = random.Random(seed)
    packets = []
    for k in range(flows):
        t0 = 1_700_000_000 + k * 0.0137 + rng.random() * 0.001
        packets += http_flow(k, t0) if k % 3 else dns_flow(k, t0)
    packets.sort(key=lambda p: float(p.time))
    return packets


def write_capture(path: Path, flows: int = 60, seed: int = 1, pcapng: bool = False) -> Path:
    (wrpcapng if pcapng else wrpcap)(str(path), generated_packets(flows, seed))
    return path


def whole_file_lines(tool: str, args: Sequence[str], files: Sequence[Path]) -> list[bytes]:
    """What the tool prints on each whole file, files one after another (banners dropped)."""
    lines: list[bytes] = []
    for path in files:
        argv = [tool, "-q" if tool == "ngrep" else "", *(["-I"] if tool == "ngrep" else ["-r"]), str(path), *args]
        out = subprocess.run([a for a in argv if a], capture_output=True, check=False).stdout
        lines += out.splitlines(keepends=True)
    return drop_banners(tool, lines)


def drop_banners(tool: str, lines: Sequence[bytes]) -> list[bytes]:
    """ngrep's banner (input, filter, match lines) is per run: not part of the answer."""
    return [line for line in lines
            if not (tool == "ngrep" and line.startswith((b"input: ", b"filter: ", b"match")))]


def chunked_lines(store: Store, tool: str, args: Sequence[str], merge: bool = False) -> list[bytes]:
    """The distributed answer without Dask: every chunk's task in this process, in turn."""
    query = make_query(tool, args, merge=merge)
    out = io.BytesIO()
    sink = OutputSink(query, out)
    spool = store.spool / "test"
    spool.mkdir(parents=True, exist_ok=True)
    done = []
    for chunk in store.chunks():
        task = ChunkTask(chunk.id, str(store.chunk_path(chunk)), str(spool / f"{chunk.id}.out"), chunk.node)
        result = run_chunk(query, task)
        assert result.returncode in (0, 1), result.stderr
        done.append((Path(task.spool), store.chunk_path(chunk)))
        if not merge:
            sink.stream(*done[-1])
    if merge:
        sink.merge(done)
    return drop_banners(tool, out.getvalue().splitlines(keepends=True))

"""Captures made here, with scapy, for the capture demo when no capture files are given.

What a tap on a data-center link would see, in three files (about 1,900 frames in all,
every frame at most 1,514 bytes so it replays onto the emulated links):

  generated-http.pcap   HTTP/1.1 over TCP, IPv4: 40 short connections (response sizes from the
                        built-in fb_hadoop model, capped) and 2 bulk downloads; each with
                        handshake, request, data and ACKs, and FIN from both ends
  generated-dns.pcap    60 DNS lookups over UDP (query, answer) and 5 pings (ICMP echo, 4 each)
  generated-mixed.pcap  6 HTTP connections over IPv6 and a two-way RTP-like UDP stream

Every flow has packets in both directions, which is what the capture cluster must keep
together. Connections overlap in time (Poisson starts). The same seed writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from sim.builtin_workloads import BUILTIN

# The two sides of the tapped link: frames towards the servers carry CLIENT_SIDE_MAC as
# source, replies the other way round (a router on each side).
CLIENT_SIDE_MAC = "02:00:00:0c:00:01"
SERVER_SIDE_MAC = "02:00:00:0c:00:02"
START = 1_700_000_000.0      # capture start time (fixed: the same seed gives the same file)
ETHERNET_MAX = 1514          # without FCS: the most an emulated link with MTU 1500 carries


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int

    @property
    def ipv6(self) -> bool:
        return ":" in self.address


def _ip(src: Endpoint, dst: Endpoint, to_server: bool) -> Packet:
    macs = (CLIENT_SIDE_MAC, SERVER_SIDE_MAC) if to_server else (SERVER_SIDE_MAC, CLIENT_SIDE_MAC)
    network = IPv6(src=src.address, dst=dst.address) if src.ipv6 else IP(src=src.address, dst=dst.address)
    return Ether(src=macs[0], dst=macs[1]) / network


def _max_payload(endpoint: Endpoint) -> int:
    """TCP payload that fills a 1,514-byte frame (no TCP options after the handshake)."""
    return ETHERNET_MAX - 14 - (40 if endpoint.ipv6 else 20) - 20


def tcp_connection(client: Endpoint, server: Endpoint, request: bytes, response_size: int,
                   start: float, rtt: float, rng: np.random.Generator) -> list[Packet]:
    """One HTTP connection as a tap sees it: handshake, request, response segments (the client
    ACKs every second one), then FIN and ACK from each end. Sequence numbers are consistent."""
    packets: list[Packet] = []
    now = start

    def send(to_server: bool, flags: str, seq: int, ack: int, payload: bytes = b"", delay: float = 0.0) -> None:
        nonlocal now
        now += delay
        src, dst = (client, server) if to_server else (server, client)
        segment = TCP(sport=src.port, dport=dst.port, flags=flags, seq=seq, ack=ack, window=65535)
        if "S" in flags:
            segment.options = [("MSS", _max_payload(src))]
        packet = _ip(src, dst, to_server) / segment / payload if payload else _ip(src, dst, to_server) / segment
        packet.time = now
        packets.append(packet)

    c_seq, s_seq = int(rng.integers(0, 2**32)), int(rng.integers(0, 2**32))
    send(True, "S", c_seq, 0)
    send(False, "SA", s_seq, c_seq + 1, delay=rtt / 2)
    c_seq, s_seq = c_seq + 1, s_seq + 1
    send(True, "A", c_seq, s_seq, delay=rtt / 2)
    send(True, "PA", c_seq, s_seq, request, delay=1e-4)
    c_seq += len(request)
    body = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % response_size + bytes(response_size)
    mss = _max_payload(server)
    segments = [body[i:i + mss] for i in range(0, len(body), mss)]
    for index, chunk in enumerate(segments):
        last = index == len(segments) - 1
        # The first segment a half RTT after the request; the rest back to back at about 1 Gb/s.
        delay = rtt / 2 if index == 0 else len(chunk) * 8 / 1e9
        send(False, "PA" if last else "A", s_seq, c_seq, chunk, delay=delay)
        s_seq += len(chunk)
        if index % 2 == 1 or last:
            send(True, "A", c_seq, s_seq, delay=rtt / 2)
    # The server closes (HTTP/1.1 with Connection: close), the client answers with its own FIN.
    send(False, "FA", s_seq, c_seq, delay=1e-4)
    s_seq += 1
    send(True, "FA", c_seq, s_seq, delay=rtt / 2)
    c_seq += 1
    send(False, "A", s_seq, c_seq, delay=rtt / 2)
    return packets


def dns_lookup(client: Endpoint, resolver: Endpoint, name: str, answer: str, query_id: int,
               start: float, rtt: float) -> list[Packet]:
    """A query and its answer (A record), one UDP flow."""
    question = DNSQR(qname=name)
    query = (_ip(client, resolver, True) / UDP(sport=client.port, dport=resolver.port)
             / DNS(id=query_id, rd=1, qd=question))
    reply = (_ip(resolver, client, False) / UDP(sport=resolver.port, dport=client.port)
             / DNS(id=query_id, qr=1, rd=1, ra=1, qd=question, an=DNSRR(rrname=name, rdata=answer, ttl=300)))
    query.time, reply.time = start, start + rtt
    return [query, reply]


def ping(client: str, server: str, count: int, start: float, rtt: float) -> list[Packet]:
    """`count` ICMP echo requests, one a second, each answered."""
    packets: list[Packet] = []
    here, there = Endpoint(client, 0), Endpoint(server, 0)
    for seq in range(1, count + 1):
        request = _ip(here, there, True) / ICMP(type=8, id=0x4242, seq=seq) / bytes(56)
        reply = _ip(there, here, False) / ICMP(type=0, id=0x4242, seq=seq) / bytes(56)
        request.time, reply.time = start + seq - 1, start + seq - 1 + rtt
        packets += [request, reply]
    return packets


def udp_stream(a: Endpoint, b: Endpoint, packets_each_way: int, payload: int, gap: float, start: float,
               rtt: float) -> list[Packet]:
    """Two-way constant-rate UDP (a voice call's RTP): one flow, both directions."""
    packets: list[Packet] = []
    for k in range(packets_each_way):
        out = _ip(a, b, True) / UDP(sport=a.port, dport=b.port) / bytes(payload)
        back = _ip(b, a, False) / UDP(sport=b.port, dport=a.port) / bytes(payload)
        out.time, back.time = start + k * gap, start + k * gap + rtt / 2
        packets += [out, back]
    return packets


def _starts(rng: np.random.Generator, count: int, rate: float) -> np.ndarray:
    """Poisson arrival times from START, `rate` per second."""
    return START + np.cumsum(rng.exponential(1.0 / rate, count))


def _ephemeral_port(rng: np.random.Generator) -> int:
    return int(rng.integers(49152, 65536))    # IANA's dynamic range (Linux starts lower; either will do)


def _client(rng: np.random.Generator) -> Endpoint:
    return Endpoint(f"10.1.{int(rng.integers(0, 8))}.{int(rng.integers(2, 250))}", _ephemeral_port(rng))


def _get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def http_capture(rng: np.random.Generator) -> list[Packet]:
    servers = [Endpoint(f"10.2.0.{80 + k}", 80) for k in range(4)]
    # Short objects from the fb_hadoop model (most under a few KB), capped so the file stays small.
    sizes = np.minimum(BUILTIN["fb_hadoop"].sample(rng, 40), 60_000).astype(int).tolist() + [180_000, 120_000]
    packets: list[Packet] = []
    for start, size in zip(_starts(rng, len(sizes), rate=8.0), sizes):
        server = servers[int(rng.integers(0, len(servers)))]
        packets += tcp_connection(_client(rng), server, _get(f"/obj/{size}", server.address), size, float(start),
                                  rtt=float(rng.uniform(2e-4, 5e-3)), rng=rng)
    return packets


def dns_capture(rng: np.random.Generator) -> list[Packet]:
    resolvers = [Endpoint("10.2.0.53", 53), Endpoint("10.2.1.53", 53)]
    names = [f"{service}.{zone}" for service in ("www", "api", "cdn", "mail", "db") for zone in
             ("example.com", "example.net", "example.org")]
    packets: list[Packet] = []
    for query_id, start in enumerate(_starts(rng, 60, rate=20.0), 1):
        name = names[int(rng.integers(0, len(names)))]
        answer = f"10.3.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
        packets += dns_lookup(_client(rng), resolvers[query_id % 2], name, answer, query_id, float(start),
                              rtt=float(rng.uniform(2e-4, 2e-3)))
    for start in _starts(rng, 5, rate=2.0):
        packets += ping(_client(rng).address, f"10.2.0.{80 + int(rng.integers(0, 4))}", 4, float(start),
                        rtt=float(rng.uniform(1e-4, 1e-3)))
    return packets


def mixed_capture(rng: np.random.Generator) -> list[Packet]:
    packets: list[Packet] = []
    server = Endpoint("fd00:2::80", 80)
    for start in _starts(rng, 6, rate=3.0):
        client = Endpoint(f"fd00:1::{int(rng.integers(1, 0xffff)):x}", _ephemeral_port(rng))
        size = int(rng.integers(2_000, 30_000))
        packets += tcp_connection(client, server, _get(f"/obj/{size}", "[fd00:2::80]"), size, float(start),
                                  rtt=float(rng.uniform(2e-4, 3e-3)), rng=rng)
    caller, callee = Endpoint("10.1.9.20", 16_384), Endpoint("10.2.5.20", 20_000)
    packets += udp_stream(caller, callee, packets_each_way=150, payload=172, gap=0.02, start=START + 0.1, rtt=2e-3)
    return packets


CAPTURES = {"generated-http.pcap": http_capture, "generated-dns.pcap": dns_capture,
            "generated-mixed.pcap": mixed_capture}


def write_generated_captures(directory: Path, seed: int = 1) -> list[Path]:
    """Write the captures into `directory` (made if missing), frames in time order; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (name, make) in enumerate(CAPTURES.items()):
        packets = sorted(make(np.random.default_rng([seed, index])), key=lambda p: float(p.time))
        path = directory / name
        wrpcap(str(path), packets)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m topo.generated_captures DIR [--seed N]`: write the captures into DIR."""
    import argparse

    parser = argparse.ArgumentParser(description="write the capture demo's generated captures (pcap)")
    parser.add_argument("dir", type=Path, help="directory to write them into (made if missing)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for path in write_generated_captures(args.dir, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

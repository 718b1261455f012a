"""Forwarding methods: direct server return, IP-in-IP, capture output with truncation."""

from __future__ import annotations

from dispatcher_base import (
    BACKENDS,
    CLIENT_IP6,
    CLIENT_PORT,
    RING_SIZE,
    TAP_PORT,
    VIP,
    VIP6,
    DispatcherTest,
    backend_mac,
    tcp_packet,
)
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from controller.p4runtime.encoding import mac_to_int

OUTER_SRC = "192.0.2.1"
OUTER_DST = "192.0.2.12"
TUNNEL_SRC_MAC = "02:00:00:00:aa:01"


class DsrRewritesOnlyDestinationMac(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(ring=[11] * RING_SIZE)
        sent = bytes(tcp_packet(sport=40100, flags="S", payload=b"hello"))
        self.send(CLIENT_PORT, sent)
        port, out = self.expect_one()
        self.assertEqual(port, BACKENDS[11])
        self.assertEqual(out[:6], mac_to_int(backend_mac(11)).to_bytes(6, "big"))
        self.assertEqual(out[6:], sent[6:], "DSR changed more than the destination MAC")


class IpInIpEncapsulation(DispatcherTest):
    """The packet decodes in scapy as IPv4 (proto 4) around the untouched original."""

    def setup_tunnel(self, vip: str) -> None:
        self.setup_vip_service(vip=vip, ring=[12] * RING_SIZE)
        self.client.write([self.tables.backend_ipip(12, BACKENDS[12], TUNNEL_SRC_MAC, backend_mac(12),
                                                    OUTER_SRC, OUTER_DST, kind="modify")])

    def check_outer(self, out: bytes, inner_bytes: bytes, proto: int) -> IP:
        frame = Ether(out)
        outer = frame[IP]
        self.assertEqual((frame.src, frame.dst), (TUNNEL_SRC_MAC, backend_mac(12)))
        self.assertEqual(frame.type, 0x0800)
        self.assertEqual((outer.src, outer.dst, outer.proto, outer.ihl), (OUTER_SRC, OUTER_DST, proto, 5))
        self.assertEqual(outer.len, 20 + len(inner_bytes))
        fresh = IP(bytes(outer))
        fresh.chksum = None  # scapy recomputes it when built
        self.assertEqual(outer.chksum, IP(bytes(fresh)).chksum, "outer IPv4 checksum is wrong")
        self.assertEqual(bytes(outer.payload), inner_bytes, "inner packet was altered")
        return outer

    def runTest(self) -> None:
        self.setup_tunnel(VIP)
        pkt = tcp_packet(sport=40200, flags="S", payload=b"tunnel me")
        self.send(CLIENT_PORT, pkt)
        port, out = self.expect_one()
        self.assertEqual(port, BACKENDS[12])
        self.check_outer(out, bytes(pkt[IP]), proto=4)


class IpInIpIpv6Inner(IpInIpEncapsulation):
    def runTest(self) -> None:
        self.setup_tunnel(VIP6)
        pkt = tcp_packet(sport=40300, flags="S", src=CLIENT_IP6, dst=VIP6, payload=b"v6 inside")
        self.send(CLIENT_PORT, pkt)
        port, out = self.expect_one()
        self.assertEqual(port, BACKENDS[12])
        self.check_outer(out, bytes(pkt[IPv6]), proto=41)


class CaptureOutputTruncates(DispatcherTest):
    def runTest(self) -> None:
        self.setup_capture_service(truncate_bytes=64)
        big = tcp_packet(sport=40400, dport=443, flags="PA", payload=b"p" * 500)
        self.send(TAP_PORT, big)
        port, out = self.expect_one()
        self.assertIn(port, BACKENDS.values())
        self.assertEqual(out, bytes(big)[:64])

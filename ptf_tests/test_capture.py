"""Capture mode: every packet of a connection, both directions, reaches one node."""

from __future__ import annotations

from dispatcher_base import BACKENDS, TAP_PORT, DispatcherTest, tcp_packet, udp_packet
from scapy.layers.l2 import ARP, Ether

from controller.dataplane.constants import DigestFlag, DispatchEvent


class BothDirectionsReachOneNode(DispatcherTest):
    def runTest(self) -> None:
        self.setup_capture_service()
        nodes = set()
        for i in range(12):
            a, b = f"172.16.0.{i + 1}", f"172.16.9.{i + 1}"
            sport = 33000 + i
            conversation = [
                tcp_packet(src=a, dst=b, sport=sport, dport=443, flags="S"),
                tcp_packet(src=b, dst=a, sport=443, dport=sport, flags="SA"),
                tcp_packet(src=a, dst=b, sport=sport, dport=443, flags="A"),
                tcp_packet(src=b, dst=a, sport=443, dport=sport, flags="PA", payload=b"data"),
                tcp_packet(src=a, dst=b, sport=sport, dport=443, flags="FA"),
            ]
            ports = set()
            for pkt in conversation:
                self.send(TAP_PORT, pkt)
                port, out = self.expect_one()
                self.assertEqual(out, bytes(pkt), "capture output must be the packet unchanged")
                ports.add(port)
            self.assertEqual(len(ports), 1, f"connection {i} split over ports {ports}")
            nodes |= ports
        self.assertGreater(len(nodes), 1, "twelve connections all went to one node")


class SymmetricDigest(DispatcherTest):
    """The digest carries the sorted key, so one `flows` entry matches both directions."""

    def runTest(self) -> None:
        self.setup_capture_service()
        a, b = "172.16.5.9", "172.16.1.1"  # a > b: the digest must list b first
        self.send(TAP_PORT, tcp_packet(src=a, dst=b, sport=1111, dport=80, flags="S"))
        port, _ = self.expect_one()
        self.send(TAP_PORT, tcp_packet(src=b, dst=a, sport=80, dport=1111, flags="SA"))
        self.expect_one()
        self.send(TAP_PORT, tcp_packet(src=a, dst=b, sport=1111, dport=80, flags="A"))
        self.expect_one()
        (digest,) = self.digests()
        self.assertEqual((str(digest.src_ip), digest.src_port, str(digest.dst_ip), digest.dst_port),
                         (b, 80, a, 1111))
        self.assertTrue(digest.flags & DigestFlag.DIGEST_FLAG_SYMMETRIC)
        self.assertTrue(digest.rtt_valid)
        # Installed from the digest, the entry serves both directions.
        self.client.write([self.tables.flow(digest.key, digest.backend_id, 5)])
        for pkt in (tcp_packet(src=a, dst=b, sport=1111, dport=80, flags="PA"),
                    tcp_packet(src=b, dst=a, sport=80, dport=1111, flags="PA")):
            self.send(TAP_PORT, pkt)
            self.assertEqual(self.expect_one()[0], BACKENDS[digest.backend_id])
        self.assertEqual(port, BACKENDS[digest.backend_id])
        self.assertEqual(self.events()[DispatchEvent.EVENT_FLOW_TABLE_HIT], 2)


class UdpBothDirections(DispatcherTest):
    def runTest(self) -> None:
        self.setup_capture_service()
        ports = set()
        for pkt in (udp_packet(src="172.16.2.2", dst="172.16.3.3", sport=5000, dport=6000),
                    udp_packet(src="172.16.3.3", dst="172.16.2.2", sport=6000, dport=5000)):
            self.send(TAP_PORT, pkt)
            ports.add(self.expect_one()[0])
        self.assertEqual(len(ports), 1)


class NonIpOnTapIsStateless(DispatcherTest):
    """ARP and other non-IP frames from the tap go to a node by the ring, never cached."""

    def runTest(self) -> None:
        self.setup_capture_service()
        arp = Ether(src="00:00:00:00:10:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="172.16.0.1", pdst="172.16.0.2")
        self.send(TAP_PORT, arp)
        port, out = self.expect_one()
        self.assertIn(port, BACKENDS.values())
        self.assertEqual(out, bytes(arp))
        self.assertEqual(self.events()[DispatchEvent.EVENT_STATELESS], 1)
        self.expect_no_digest(0.3)

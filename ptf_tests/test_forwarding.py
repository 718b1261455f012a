"""IPv6 services, VLAN-tagged traffic and plain L2 forwarding beside the dispatcher."""

from __future__ import annotations

from dispatcher_base import BACKENDS, CLIENT_IP6, CLIENT_PORT, SPARE_PORT, VIP, VIP6, DispatcherTest, tcp_packet
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from controller.dataplane.constants import DropReason
from controller.p4runtime.encoding import flow_address


class Ipv6ServiceDispatchesAndDigests(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(vip=VIP6)
        syn = tcp_packet(src=CLIENT_IP6, dst=VIP6, sport=40600, flags="S")
        port = self.send_and_port(CLIENT_PORT, syn)
        self.assertIn(port, BACKENDS.values())
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(src=CLIENT_IP6, dst=VIP6, sport=40600, flags="A")), port)
        (digest,) = self.digests()
        self.assertEqual(digest.key, (flow_address(CLIENT_IP6), flow_address(VIP6), 6, 40600, 80))
        self.assertEqual(BACKENDS[digest.backend_id], port)


class VlanTaggedServiceTraffic(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        frame = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:fe") / Dot1Q(vlan=42) / IP(src="10.0.1.1", dst=VIP) / TCP(sport=40700, dport=80, flags="S")
        sent = bytes(frame)
        self.send(CLIENT_PORT, sent)
        port, out = self.expect_one()
        self.assertIn(port, BACKENDS.values())
        self.assertEqual(out[6:], sent[6:], "the VLAN tag and the rest are kept")
        self.assertEqual(Ether(out)[Dot1Q].vlan, 42)


class PlainL2Forwarding(DispatcherTest):
    def runTest(self) -> None:
        mac = "00:00:00:00:00:06"
        self.client.write([self.tables.l2_entry(mac, SPARE_PORT)])
        # Non-service IP traffic and non-IP frames follow the L2 table.
        ip_frame = bytes(Ether(dst=mac, src="00:00:00:00:00:01") / IP(src="10.0.1.1", dst="10.0.9.9") / TCP(dport=22))
        self.send(CLIENT_PORT, ip_frame)
        self.assertEqual(self.expect_one(), (SPARE_PORT, ip_frame))
        # An unknown destination is dropped and counted, until a flood group is set.
        arp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="00:00:00:00:00:01") / ARP(pdst="10.0.1.2"))
        self.send(CLIENT_PORT, arp)
        self.expect_nothing()
        self.assertEqual(self.drops(), {DropReason.L2_MISS: 1})
        self.client.write(self.tables.l2_flood(1, [1, 2, 6]))
        self.send(CLIENT_PORT, arp)
        copies = [self.receive(1.0), self.receive(1.0)]
        ports = sorted(c[0] for c in copies if c is not None)
        self.assertEqual(ports, [2, 6], "flood reaches every group port but the ingress one")
        self.expect_nothing(0.3)

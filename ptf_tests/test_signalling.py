"""Signalling clones to the CPU port, and packet-out from the controller."""

from __future__ import annotations

import queue

from dispatcher_base import BACKENDS, CLIENT_PORT, SPARE_PORT, SWITCH_MAC, DispatcherTest, tcp_packet, udp_packet
from scapy.layers.l2 import Ether

from controller.dataplane.constants import PacketInReason


class SignallingReachesCpuWithIngressPort(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(protocol=17, port=5060)
        self.client.write(self.tables.signalling_port(17, 5060))
        invite = udp_packet(sport=5062, dport=5060, payload=b"INVITE sip:bob@example.com SIP/2.0\r\n")
        self.send(CLIENT_PORT, invite)
        port, out = self.expect_one()  # the original is still dispatched
        self.assertIn(port, BACKENDS.values())
        packet_in = self.client.packet_ins.get(timeout=2)
        fields = self.tables.packet_in_fields(packet_in)
        self.assertEqual(fields["ingress_port"], CLIENT_PORT)
        self.assertEqual(fields["reason"], PacketInReason.SIGNALLING)
        self.assertEqual(packet_in.payload, bytes(invite), "the CPU gets the packet as it arrived")
        # Answers from the signalling port (as source) are cloned too; this one is plain L2.
        self.client.write([self.tables.l2_entry(SWITCH_MAC, CLIENT_PORT)])
        self.send(SPARE_PORT, udp_packet(sport=5060, dport=5062, dst="10.0.1.1", src="10.0.0.9"))
        self.assertEqual(self.expect_one()[0], CLIENT_PORT)
        packet_in = self.client.packet_ins.get(timeout=2)
        self.assertEqual(self.tables.packet_in_fields(packet_in)["ingress_port"], SPARE_PORT)
        self.assertEqual(self.tables.read_direct_counter(self.client, "signalling"), 2)


class OtherTrafficIsNotCloned(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        self.client.write(self.tables.signalling_port(17, 5060))
        self.send(CLIENT_PORT, tcp_packet(flags="S", dport=80))
        self.expect_one()
        with self.assertRaises(queue.Empty):
            self.client.packet_ins.get(timeout=0.5)


class PacketOutLeavesOnNamedPort(DispatcherTest):
    def runTest(self) -> None:
        frame = bytes(Ether(src="00:00:00:00:00:fe", dst="00:00:00:00:00:06") / (b"from the controller" * 3))
        self.client.packet_out(frame, self.tables.packet_out_metadata(SPARE_PORT))
        port, out = self.expect_one()
        self.assertEqual((port, out), (SPARE_PORT, frame))

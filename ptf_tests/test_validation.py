"""Malformed and truncated packets: dropped, never forwarded half-parsed, counted by reason."""

from __future__ import annotations

from dispatcher_base import (
    CLIENT_IP,
    CLIENT_MAC,
    CLIENT_PORT,
    SWITCH_MAC,
    TAP_PORT,
    VIP,
    DispatcherTest,
    tcp_packet,
    udp_packet,
)
from scapy.layers.inet import IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from controller.dataplane.constants import DispatchEvent, PacketInReason
from controller.dataplane.constants import DropReason as R


def eth() -> Ether:
    return Ether(src=CLIENT_MAC, dst=SWITCH_MAC)


def ipv4_bytes(**fields) -> bytes:
    return bytes(IP(src=CLIENT_IP, dst=VIP, **fields) / TCP(sport=1000, dport=80, flags="S"))


def with_ip(ip_bytes: bytes) -> bytes:
    return bytes(eth())[:12] + b"\x08\x00" + ip_bytes


def bad_checksum() -> bytes:
    ip = bytearray(ipv4_bytes())
    ip[10] ^= 0xFF
    return with_ip(bytes(ip))


def set_byte(data: bytes, index: int, value: int) -> bytes:
    data = bytearray(data)
    data[index] = value
    return bytes(data)


# (name, frame, expected drop reason). Offsets: Ethernet 14, IPv4 header 20.
CASES = [
    ("IPv4 header cut short", bytes(eth() / IP(src=CLIENT_IP, dst=VIP))[:14 + 12], R.PARSER_TRUNCATED),
    ("TCP header cut short", bytes(tcp_packet(flags="S"))[:14 + 20 + 8], R.PARSER_TRUNCATED),
    ("IPv4 options cut short", with_ip(set_byte(ipv4_bytes(), 0, 0x4F))[:14 + 30], R.PARSER_TRUNCATED),
    ("IPv4 version 5", with_ip(set_byte(ipv4_bytes(), 0, 0x55)), R.IPV4_BAD_VERSION),
    ("IPv4 IHL 3", with_ip(set_byte(ipv4_bytes(), 0, 0x43)), R.IPV4_BAD_IHL),
    ("IPv4 total length 12", bytes(eth() / IP(src=CLIENT_IP, dst=VIP, len=12) / TCP(dport=80)), R.IPV4_BAD_TOTAL_LEN),
    ("IPv4 bad checksum", bad_checksum(), R.IPV4_BAD_CHECKSUM),
    ("IP payload shorter than stated", bytes(eth() / IP(src=CLIENT_IP, dst=VIP, len=400) / TCP(dport=80)), R.IP_TRUNCATED),
    ("IPv6 version 4 in an IPv6 frame", set_byte(bytes(eth() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP()), 14, 0x40), R.IPV6_BAD_VERSION),
    ("TCP data offset 2", bytes(eth() / IP(src=CLIENT_IP, dst=VIP) / TCP(dport=80, dataofs=2)), R.TCP_BAD_OFFSET),
    ("UDP length 4", bytes(eth() / IP(src=CLIENT_IP, dst=VIP) / UDP(dport=53, len=4)), R.UDP_BAD_LENGTH),
    ("VLAN-tagged truncated IPv4", bytes(eth() / Dot1Q(vlan=7) / IP(src=CLIENT_IP, dst=VIP))[:18 + 10], R.PARSER_TRUNCATED),
]


class MalformedPacketsDroppedByReason(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        expected: dict[R, int] = {}
        for name, frame, reason in CASES:
            self.send(CLIENT_PORT, frame)
            got = self.receive(0.5)
            self.assertIsNone(got, f"{name}: forwarded on port {got[0] if got else None}")
            expected[reason] = expected.get(reason, 0) + 1
        self.assertEqual(self.drops(), expected)
        # A well-formed packet still goes through, and the checks did not count it.
        self.send(CLIENT_PORT, tcp_packet(flags="S"))
        self.assertIsNotNone(self.receive(1.0))
        self.assertEqual(self.drops(), expected)


class Ipv4OptionsParsedAndKept(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        options = [IPOption_Router_Alert(), IPOption_Router_Alert()]  # 8 bytes: IHL 7
        pkt = eth() / IP(src=CLIENT_IP, dst=VIP, options=options) / TCP(sport=1001, dport=80, flags="S")
        sent = bytes(pkt)
        self.send(CLIENT_PORT, sent)
        port, out = self.expect_one()
        self.assertEqual(out[6:], sent[6:])
        self.assertEqual(out[14] & 0x0F, 7)


class VipWithoutServiceDropped(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(port=80)
        self.send(CLIENT_PORT, tcp_packet(dport=8080, flags="S"))
        self.send(CLIENT_PORT, udp_packet(dport=80))  # right port, wrong protocol
        self.expect_nothing()
        self.assertEqual(self.drops(), {R.VIP_PORT_UNCONFIGURED: 2})


class VipFragmentsDropped(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        first = eth() / IP(src=CLIENT_IP, dst=VIP, flags="MF", id=7) / TCP(dport=80) / (b"a" * 32)
        later = eth() / IP(src=CLIENT_IP, dst=VIP, frag=5, id=7, proto=6) / (b"b" * 32)
        self.send(CLIENT_PORT, first)
        self.send(CLIENT_PORT, later)
        self.expect_nothing()
        self.assertEqual(self.drops(), {R.VIP_FRAGMENT: 2})


class BadChecksumStillReachesCaptureNode(DispatcherTest):
    """On a tap port a wrong IPv4 checksum is what was on the wire: captured and counted."""

    def runTest(self) -> None:
        self.setup_capture_service()
        frame = bad_checksum()
        self.send(TAP_PORT, frame)
        port, out = self.expect_one()
        self.assertEqual(out, frame)
        self.assertEqual(self.events()[DispatchEvent.EVENT_BAD_CHECKSUM_CAPTURED], 1)
        self.assertEqual(self.drops(), {})


class DroppedPacketsCopiedToCpuByReason(DispatcherTest):
    """drop_copies sends the packets dropped for a chosen reason to the controller too, with
    the reason in the packet-in header; other reasons stay silent."""

    def runTest(self) -> None:
        self.setup_vip_service()
        self.client.write([self.tables.drop_copy(R.VIP_PORT_UNCONFIGURED)])
        self.send(CLIENT_PORT, tcp_packet(dport=8080, flags="S"))       # VIP port without a service
        self.expect_nothing()
        packet = self.client.packet_ins.get(timeout=2)
        fields = self.tables.packet_in_fields(packet)
        self.assertEqual(fields["reason"], PacketInReason.DROPPED)
        self.assertEqual(fields["drop_reason"], R.VIP_PORT_UNCONFIGURED)
        self.assertEqual(fields["ingress_port"], CLIENT_PORT)
        self.send(CLIENT_PORT, bad_checksum())                           # another reason: no copy
        self.expect_nothing()
        self.assertTrue(self.client.packet_ins.empty())

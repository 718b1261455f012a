"""The Python flow-key model follows the data plane's rules."""

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from controller.dataplane.flow_key import flow_key
from controller.p4runtime.encoding import flow_address

E = Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")


def test_ipv4_tcp_key():
    frame = bytes(E / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80))
    assert flow_key(frame) == (flow_address("10.0.0.1"), flow_address("10.0.0.2"), 6, 1234, 80)


def test_vlan_and_ipv6():
    frame = bytes(E / Dot1Q(vlan=5) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5, dport=6))
    assert flow_key(frame) == (flow_address("2001:db8::1"), flow_address("2001:db8::2"), 17, 5, 6)


def test_fragments_have_no_ports_but_the_first():
    first = bytes(E / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(sport=1, dport=2))
    later = bytes(E / IP(src="10.0.0.1", dst="10.0.0.2", frag=10, proto=17) / (b"x" * 20))
    assert flow_key(first)[3:] == (1, 2)
    assert flow_key(later)[3:] == (0, 0)


def test_non_ip_is_keyed_by_macs():
    key = flow_key(bytes(E / ARP()))
    assert key == (0x01, 0x02, 0, 0, 0)
    assert flow_key(b"short") is None


ipv4 = st.ip_addresses(v=4).map(str)
ports = st.integers(0, 65535)


@given(ipv4, ipv4, ports, ports)
def test_symmetric_key_is_the_same_both_ways(a, b, pa, pb):
    forward = bytes(E / IP(src=a, dst=b) / TCP(sport=pa, dport=pb))
    reverse = bytes(E / IP(src=b, dst=a) / TCP(sport=pb, dport=pa))
    assert flow_key(forward, symmetric=True) == flow_key(reverse, symmetric=True)
    key = flow_key(forward, symmetric=True)
    assert (key[0], key[3]) <= (key[1], key[4])

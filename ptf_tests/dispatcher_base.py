"""Base class and fixtures for the dispatcher's PTF tests.

Every test starts from a freshly pushed pipeline (which resets tables, counters and the
flow cache on BMv2), acts as the primary controller, and talks to the switch through
the project's own P4Runtime client. Switch ports 1-6 are PTF ports 1-6 (veth pairs);
the CPU port is reached over P4Runtime.

Test parameters (ptf --test-params): grpcaddr, p4info, bmv2_json.
"""

from __future__ import annotations

import queue
import time
import zlib
from pathlib import Path

import ptf
from ptf import testutils
from ptf.base_tests import BaseTest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from controller.dataplane.constants import AdmissionLevel, DispatchEvent, DropReason
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.dataplane.flow_digest import FlowDigest, decode_digest_list
from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from controller.p4runtime.encoding import flow_address

CLIENT_PORT = 1
BACKEND_PORTS = (2, 3, 4)
TAP_PORT = 5
SPARE_PORT = 6
ALL_PORTS = (1, 2, 3, 4, 5, 6)

CLIENT_MAC = "00:00:00:00:00:01"
SWITCH_MAC = "00:00:00:00:00:fe"
VIP = "10.0.0.100"
VIP6 = "2001:db8::100"
CLIENT_IP = "10.0.1.1"
CLIENT_IP6 = "2001:db8:1::1"
SERVICE_ID = 1
RING_SIZE = 16

# Backend id -> switch port. Backend 10 is on port 2, 11 on 3, 12 on 4.
BACKENDS = {10: 2, 11: 3, 12: 4}


def backend_mac(backend_id: int) -> str:
    return f"02:00:00:00:00:{backend_id:02x}"


def flow_hash(src: str, dst: str, protocol: int, sport: int, dport: int) -> int:
    """CRC32 of the flow key exactly as the data plane feeds it to the hash."""
    data = (flow_address(src).to_bytes(16, "big") + flow_address(dst).to_bytes(16, "big")
            + bytes([protocol]) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))
    return zlib.crc32(data)


def tcp_packet(sport: int = 40000, dport: int = 80, flags: str = "S", src: str = CLIENT_IP,
               dst: str = VIP, payload: bytes = b"", **ip_fields) -> Packet:
    ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst, **ip_fields)
    return Ether(src=CLIENT_MAC, dst=SWITCH_MAC) / ip / TCP(sport=sport, dport=dport, flags=flags) / payload


def udp_packet(sport: int = 40000, dport: int = 53, src: str = CLIENT_IP, dst: str = VIP,
               payload: bytes = b"x" * 16) -> Packet:
    ip = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
    return Ether(src=CLIENT_MAC, dst=SWITCH_MAC) / ip / UDP(sport=sport, dport=dport) / payload


class DispatcherTest(BaseTest):
    """Connects, pushes the pipeline, and offers the helpers the tests share."""

    # Another build of the dispatcher from build/ (scripts/build_p4.sh), e.g. the one with a
    # single cache set; None: the program the runner names.
    program: str | None = None

    def setUp(self) -> None:
        BaseTest.setUp(self)
        self.dataplane = ptf.dataplane_instance
        p4info, bmv2_json = Path(testutils.test_param_get("p4info")), Path(testutils.test_param_get("bmv2_json"))
        if self.program is not None:
            p4info = p4info.with_name(f"{self.program}.p4info.txtpb")
            bmv2_json = bmv2_json.with_name(f"{self.program}.json")
        self.info = P4InfoIndex.load(p4info)
        self.tables = DispatcherTables(self.info)
        self.client = P4RuntimeClient(testutils.test_param_get("grpcaddr", "127.0.0.1:9559"))
        self.assertTrue(self.client.connect(), "the test must be the primary controller")
        self.client.set_pipeline_files(self.info.p4info, bmv2_json)
        # Each test runs on a fresh switch (run_ptf.py), so nothing here exists yet.
        self.client.write([self.tables.flow_digest_config(), self.tables.cpu_clone_session()])
        self.dataplane.flush()

    def tearDown(self) -> None:
        self.client.close()
        BaseTest.tearDown(self)

    # ---- configuration --------------------------------------------------------------

    def setup_vip_service(self, vip: str = VIP, protocol: int = 6, port: int = 80,
                          ring: list[int] | None = None, service_id: int = SERVICE_ID) -> None:
        """A VIP service over the three DSR backends; ring defaults to 10, 11, 12, 10, ..."""
        ring = ring or [list(BACKENDS)[i % len(BACKENDS)] for i in range(RING_SIZE)]
        updates = [self.tables.vip_service(vip, protocol, port, service_id, len(ring)),
                   self.tables.vip(vip)]
        updates += [self.tables.backend_dsr(b, p, backend_mac(b)) for b, p in BACKENDS.items()]
        updates += self.tables.ring(service_id, ring, self.next_generation())
        self.client.write(updates)

    def setup_capture_service(self, truncate_bytes: int = 0) -> None:
        """Tap port 5 feeds a capture service over the three capture nodes."""
        ring = [list(BACKENDS)[i % len(BACKENDS)] for i in range(RING_SIZE)]
        updates = [self.tables.capture_port(TAP_PORT, SERVICE_ID, RING_SIZE)]
        updates += [self.tables.backend_capture(b, p, truncate_bytes) for b, p in BACKENDS.items()]
        updates += self.tables.ring(SERVICE_ID, ring, self.next_generation())
        self.client.write(updates)

    def rewrite_ring(self, backend_id: int, service_id: int = SERVICE_ID, size: int = RING_SIZE) -> None:
        self.client.write(self.tables.ring(service_id, [backend_id] * size, self.next_generation(), kind="modify"))

    def next_generation(self) -> int:
        """Ring writes carry a generation no earlier write used, as the controller's do."""
        self._generation = getattr(self, "_generation", 0) + 1
        return self._generation

    def set_timers(self, cache_timeout_us: int, digest_retry_us: int, entry_idle_us: int = 0) -> None:
        self.client.write([self.tables.dispatch_settings(cache_timeout_us, digest_retry_us, entry_idle_us)])

    def set_admission(self, level: AdmissionLevel, drop_prob: float = 0.0) -> None:
        self.client.write([self.tables.admission(SERVICE_ID, level, drop_prob)])

    # ---- packets ----------------------------------------------------------------------

    def send(self, port: int, pkt: Packet | bytes) -> None:
        testutils.send_packet(self, port, bytes(pkt))

    def receive(self, timeout: float = 1.0) -> tuple[int, bytes] | None:
        result = self.dataplane.poll(timeout=timeout)
        if isinstance(result, self.dataplane.PollFailure):
            return None
        return result.port, bytes(result.packet)

    def expect_one(self, timeout: float = 2.0) -> tuple[int, bytes]:
        """Exactly one packet comes out; returns its port and bytes."""
        got = self.receive(timeout)
        self.assertIsNotNone(got, "expected a packet out of the switch, got none")
        self.expect_nothing(0.2)
        return got

    def expect_nothing(self, timeout: float = 0.5) -> None:
        got = self.receive(timeout)
        self.assertIsNone(got, f"expected no packet, got one on port {got[0] if got else None}")

    def send_and_port(self, port: int, pkt: Packet) -> int:
        self.send(port, pkt)
        out_port, _ = self.expect_one()
        return out_port

    # ---- controller side ---------------------------------------------------------------

    def digests(self, timeout: float = 2.0, count: int = 1) -> list[FlowDigest]:
        """Wait for `count` digest messages (acked) and return their flows."""
        flows: list[FlowDigest] = []
        deadline = time.monotonic() + timeout
        while len(flows) < count:
            try:
                _, msg = self.client.digests.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.client.ack_digest(msg)
            flows.extend(decode_digest_list(msg))
        return flows

    def expect_no_digest(self, timeout: float = 0.5) -> None:
        flows = self.digests(timeout)
        self.assertEqual(flows, [], "expected no digest")

    def counter(self, name: str) -> dict:
        return self.tables.read_counter(self.client, name)

    def drops(self) -> dict[DropReason, int]:
        return {DropReason(i): c.packets for i, c in self.counter("drops").items()}

    def events(self) -> dict[DispatchEvent, int]:
        return {DispatchEvent(i): c.packets for i, c in self.counter("dispatch_events").items()}

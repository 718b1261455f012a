"""`announced_flows`: a flow a session announced takes the session's backend from its first
packet, and the announced path never moves a flow (docs/sessions.md, "Why the announced
path cannot split a flow")."""

from __future__ import annotations

import time

from dispatcher_base import (
    BACKENDS,
    CLIENT_IP,
    CLIENT_PORT,
    RING_SIZE,
    SERVICE_ID,
    TAP_PORT,
    VIP,
    DispatcherTest,
    tcp_packet,
    udp_packet,
)
from test_consistency import FILLER_PORTS, OneSetTest, ring_slot

from controller.dataplane.constants import DispatchEvent, DropReason
from controller.p4runtime.encoding import flow_address
from controller.sessions.announced import ADDRESS_MASK, PORT_MASK, AnnouncedEntry, GroupKey, Match

GROUP = GroupKey("sip", (CLIENT_IP, VIP, 17, 5060, 5060), "call-1")
SERVER_IP = "10.0.2.2"


def to_endpoint(address: str, port: int, backend_id: int) -> AnnouncedEntry:
    """Flows to address:port from anywhere, to `backend_id` (an SDP offer's entry)."""
    match = Match((0, 0), (flow_address(address), ADDRESS_MASK), 6, (0, 0), (port, PORT_MASK), 10)
    return AnnouncedEntry(match, backend_id, GROUP, (address, port), "sdp-offer", 60.0)


def from_endpoint(address: str, port: int, backend_id: int) -> AnnouncedEntry:
    match = Match((flow_address(address), ADDRESS_MASK), (0, 0), 6, (port, PORT_MASK), (0, 0), 10)
    return AnnouncedEntry(match, backend_id, GROUP, (address, port), "sdp-offer", 60.0)


def other_than(port: int) -> int:
    return next(b for b, p in BACKENDS.items() if p != port)


class AnnouncedFlowTakesTheSessionBackendAndKeepsIt(DispatcherTest):
    """The ring says one backend, the announcement another: the flow goes to the announced
    one from its SYN, keeps it when the announced entry is deleted before its `flows` entry
    exists, and its digest (flag ANNOUNCED) names it, so the exact entry agrees."""

    def runTest(self) -> None:
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=30_000_000, digest_retry_us=10_000_000)
        entry = to_endpoint(VIP, 80, 12)
        self.client.write([self.tables.announced_flow(entry)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags="S")), BACKENDS[12])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags="A")), BACKENDS[12])
        digest = self.digests()[0]
        self.assertTrue(digest.is_announced, digest)
        self.assertEqual(digest.backend_id, 12)
        # The session ends (or its entry expires) while the flow waits for its entry.
        self.client.write([self.tables.announced_delete(entry.match)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags="PA", payload=b"x")),
                         BACKENDS[12], "the flow moved when its announced entry went")
        self.client.write([self.tables.flow(digest.key, backend_id=12, stats_slot=5, entry_id=1)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags="FA")), BACKENDS[12])
        # A flow not announced follows the ring.
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41001, flags="S")), BACKENDS[10])
        events = self.events()
        self.assertEqual(events[DispatchEvent.EVENT_ANNOUNCED_HIT], 1)
        self.assertEqual(events[DispatchEvent.EVENT_ENTRY_ACTIVATED], 1)


class CaptureBothDirectionsFollowTheAnnouncement(DispatcherTest):
    """A capture service sorts a flow's ends: the entry naming the announced end as source
    and the one naming it as destination cover both orders; both directions go to one node."""

    def runTest(self) -> None:
        self.setup_capture_service()
        ring_backend = BACKENDS[10]
        self.client.write(self.tables.ring(1, [10] * RING_SIZE, self.next_generation(), kind="modify"))
        # The announced end sorts before the client for one flow (10.0.0.5 < 10.0.1.1) and after it
        # for the other (10.0.9.9 > 10.0.1.1): each is matched by one of the two entries.
        for server in ("10.0.0.5", "10.0.9.9"):
            self.client.write([self.tables.announced_flow(to_endpoint(server, 2000, 11)),
                               self.tables.announced_flow(from_endpoint(server, 2000, 11))])
            request = tcp_packet(sport=42000, dport=2000, dst=server, flags="S")
            reply = tcp_packet(sport=2000, dport=42000, src=server, dst=CLIENT_IP, flags="SA")
            self.assertEqual(self.send_and_port(TAP_PORT, request), BACKENDS[11], server)
            self.assertEqual(self.send_and_port(TAP_PORT, reply), BACKENDS[11], server)
        self.assertEqual(self.send_and_port(TAP_PORT, tcp_packet(sport=42001, dport=2001, dst="10.0.9.9")),
                         ring_backend)
        self.assertEqual(self.events()[DispatchEvent.EVENT_ANNOUNCED_HIT], 2)


class FullSetLeavesAnnouncedFlowToTheRing(OneSetTest):
    """No free way: the announced flow would be stateless, and a stateless flow must not
    depend on an entry the controller may delete. It follows the ring (counted)."""

    def runTest(self) -> None:
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=30_000_000, digest_retry_us=10_000_000)
        self.fill_cache()
        self.client.write([self.tables.announced_flow(to_endpoint(VIP, 80, 12))])
        ports = {self.send_and_port(CLIENT_PORT, tcp_packet(sport=43000, flags=f)) for f in ("S", "A", "PA")}
        self.assertEqual(ports, {BACKENDS[10]})
        events = self.events()
        self.assertEqual(events[DispatchEvent.EVENT_ANNOUNCED_UNUSED], 3)
        self.assertEqual(events.get(DispatchEvent.EVENT_ANNOUNCED_HIT, 0), 0)


class StatelessFlowMeetingAFreeWayIgnoresALaterAnnouncement(OneSetTest):
    """A stateless flow (its set full) runs on the ring; an announcement for it lands, then
    the fillers expire, so its next packet finds a free way and looks NEW. Its ring entry is
    held by its own stamp, so the announcement is not used and the flow does not move."""

    def runTest(self) -> None:
        timeout_us = 1_500_000
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=timeout_us, digest_retry_us=10_000_000)
        self.fill_cache()
        filled = time.monotonic()
        sport = 44000
        first = self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="S"))
        self.assertEqual(first, BACKENDS[10])
        self.client.write([self.tables.announced_flow(to_endpoint(VIP, 80, 12))])
        # Keep the flow talking (every 0.4 s) until the fillers have expired.
        while time.monotonic() - filled < timeout_us / 1e6 + 0.5:
            time.sleep(0.4)
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="A")), first)
        events = self.events()
        self.assertGreaterEqual(events[DispatchEvent.EVENT_NEW_FLOW], len(FILLER_PORTS) + 1,
                                "the flow found a free way (NEW) after the fillers expired")
        self.assertGreaterEqual(events[DispatchEvent.EVENT_ANNOUNCED_UNUSED], 1)
        self.assertEqual(events.get(DispatchEvent.EVENT_ANNOUNCED_HIT, 0), 0)
        # A flow that really starts now (on another ring entry, which no stateless flow holds)
        # gets the announced backend.
        fresh = next(p for p in range(sport + 1, sport + 1000) if ring_slot(p) != ring_slot(sport))
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=fresh, flags="S")), BACKENDS[12])


class VipSessionPortsAreTheServicesAndFollowTheirAnnouncements(DispatcherTest):
    """A VIP service's `session_ports` (RTP media): a flow to one of them is the service's,
    to its session's backend when announced (an SDP offer names the client's end), else by
    the ring; a VIP port in no range is still dropped. The exact entry the digest brings
    then decides the flow, so it keeps its backend after the announcement has gone."""

    def runTest(self) -> None:
        self.setup_vip_service(protocol=17, port=5060, ring=[10] * RING_SIZE)
        self.client.write([self.tables.vip_service_ports(VIP, 17, 16000, 16999, SERVICE_ID, RING_SIZE)])
        self.set_timers(cache_timeout_us=30_000_000, digest_retry_us=10_000_000)
        offer = Match((flow_address(CLIENT_IP), ADDRESS_MASK), (0, 0), 17, (20000, PORT_MASK), (0, 0), 10)
        entry = AnnouncedEntry(offer, 12, GROUP, (CLIENT_IP, 20000), "sdp-offer", 60.0)
        self.client.write([self.tables.announced_flow(entry)])
        media = udp_packet(sport=20000, dport=16000)
        self.assertEqual(self.send_and_port(CLIENT_PORT, media), BACKENDS[12])
        digest = self.digests()[0]
        self.assertTrue(digest.is_announced, digest)
        self.client.write([self.tables.announced_delete(offer),
                           self.tables.flow(digest.key, backend_id=12, stats_slot=5, entry_id=1)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, media), BACKENDS[12], "moved when the announcement went")
        # Not announced: the ring's. Outside the ranges: dropped as before.
        self.assertEqual(self.send_and_port(CLIENT_PORT, udp_packet(sport=20010, dport=16999)), BACKENDS[10])
        self.send(CLIENT_PORT, udp_packet(sport=20010, dport=17000))
        self.send(CLIENT_PORT, tcp_packet(sport=20010, dport=16000))     # the range is UDP's only
        self.expect_nothing()
        self.assertEqual(self.drops(), {DropReason.VIP_PORT_UNCONFIGURED: 2})

"""Per-connection consistency by construction (docs/consistency.md), on a build whose flow
cache is one set of four ways: once four live flows hold it, every new flow collides and is
served without flow state, while the ring is rewritten under it."""

from __future__ import annotations

import time

from dispatcher_base import (
    BACKENDS,
    CLIENT_IP,
    CLIENT_PORT,
    RING_SIZE,
    TAP_PORT,
    VIP,
    DispatcherTest,
    flow_hash,
    tcp_packet,
    udp_packet,
)
from scapy.layers.l2 import ARP, Ether

from controller.dataplane.constants import DispatchEvent
from controller.p4runtime.encoding import flow_address

TINY_CACHE = "dispatcher_tinycache"
FILLER_PORTS = (30000, 30001, 30002, 30003)


def ring_slot(sport: int) -> int:
    """The ring slot of a client flow to the VIP's port 80: the hash's high half, masked."""
    return (flow_hash(CLIENT_IP, VIP, 6, sport, 80) >> 16) & (RING_SIZE - 1)


class OneSetTest(DispatcherTest):
    program = TINY_CACHE

    def fill_cache(self, count: int = len(FILLER_PORTS)) -> None:
        """Live flows (half-open: SYN only, so no digest and no entry) in the only set; after
        four, every new flow finds no free way."""
        for sport in FILLER_PORTS[:count]:
            self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="S"))

    def refresh_fillers(self) -> None:
        for sport in FILLER_PORTS:
            self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="S"))

    def digest_of(self, sport: int, timeout: float = 2.0):
        """The next digest of the flow from `sport` (stateless flows send one with every
        confirming packet, so others may be queued before it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for digest in self.digests(timeout=max(0.05, deadline - time.monotonic())):
                if digest.src_port == sport:
                    return digest
        self.fail(f"no digest from port {sport} within {timeout} s")

    def other_backend(self, port: int, turn: int) -> int:
        """A backend that is not on `port`, a different one each turn."""
        others = [b for b, p in BACKENDS.items() if p != port]
        return others[turn % len(others)]


class EveryFlowCollidesAndKeepsItsBackend(OneSetTest):
    """Each stateless flow's ring is rewritten between its SYN and its first ACK and again
    before its entry is written: every one of its packets leaves by one port."""

    FLOWS = 24

    def runTest(self) -> None:
        self.setup_vip_service()
        self.set_timers(cache_timeout_us=60_000_000, digest_retry_us=10_000_000)
        self.fill_cache()
        self.assertEqual(self.events()[DispatchEvent.EVENT_NEW_FLOW], len(FILLER_PORTS))
        turn = 0
        for i in range(self.FLOWS):
            sport = 31000 + i
            port = self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="S"))
            self.rewrite_ring(self.other_backend(port, turn))
            turn += 1
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="A")), port,
                             f"flow {i}: its first ACK left by another port after a ring rewrite")
            digest = self.digest_of(sport)
            self.assertTrue(digest.is_collision, f"flow {i} was cached: {digest}")
            self.assertEqual(BACKENDS[digest.backend_id], port, "the digest names the backend the packets got")
            self.rewrite_ring(self.other_backend(port, turn))
            turn += 1
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="PA", payload=b"GET /")),
                             port, f"flow {i}: moved before its entry was written")
            # The controller writes the entry from the digest; the entry decides from now on.
            self.client.write([self.tables.flow(digest.key, backend_id=digest.backend_id, stats_slot=100 + i)])
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="FA")), port)
            self.digest_of(sport)   # the data packet's own digest: this flow is done
            self.refresh_fillers()  # the test outlasts no cache timeout, however slow the switch
        events = self.events()
        # SYN, ACK and data of every flow were decided without state (the entry took the FIN).
        self.assertEqual(events[DispatchEvent.EVENT_CACHE_COLLISION], 3 * self.FLOWS)
        self.assertGreaterEqual(events[DispatchEvent.EVENT_GENERATION_HELD], self.FLOWS,
                                "every flow's rewritten slot was held for it at least once")


class HeldEntryTakesTheNewGenerationAfterQuiet(OneSetTest):
    """A ring entry used by a stateless flow keeps its backend for later stateless flows
    until no stateless flow has used it for the cache timeout; then the rewrite applies."""

    def runTest(self) -> None:
        self.setup_vip_service()
        self.set_timers(cache_timeout_us=1_500_000, digest_retry_us=1_000_000)
        self.fill_cache()
        slot = ring_slot(32000)
        same_slot = [p for p in range(32001, 40000) if ring_slot(p) == slot][:2]
        first = self.send_and_port(CLIENT_PORT, tcp_packet(sport=32000, flags="S"))
        new_backend = self.other_backend(first, 0)
        self.rewrite_ring(new_backend)
        # A new stateless flow on the same entry, while the first may still send: held.
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=same_slot[0], flags="S")), first)
        held_at = time.monotonic()
        self.assertEqual(self.events()[DispatchEvent.EVENT_GENERATION_HELD], 1)
        # Quiet on that entry for longer than the cache timeout (the fillers stay live).
        time.sleep(0.9)
        self.refresh_fillers()
        time.sleep(max(0.0, 1.8 - (time.monotonic() - held_at)))
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=same_slot[1], flags="S")),
                         BACKENDS[new_backend], "the rewrite applies once the entry is quiet")
        self.assertGreaterEqual(self.events()[DispatchEvent.EVENT_GENERATION_APPLIED], 1)


class CachedFlowIgnoresRewritesStatelessOnesHold(OneSetTest):
    """With a free way a new flow is cached and takes the newest ring; its later packets
    stay with it even when a rewrite lands and the cache fills up behind it."""

    def runTest(self) -> None:
        self.setup_vip_service()
        self.set_timers(cache_timeout_us=30_000_000, digest_retry_us=10_000_000)
        cached = self.send_and_port(CLIENT_PORT, tcp_packet(sport=33000, flags="S"))
        self.assertEqual(self.events()[DispatchEvent.EVENT_NEW_FLOW], 1)
        self.fill_cache(count=3)
        self.rewrite_ring(self.other_backend(cached, 0))
        for flags in ("A", "PA", "PA"):
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=33000, flags=flags)), cached)
        self.assertEqual(self.events()[DispatchEvent.EVENT_CACHE_HIT], 3)


class NonIpCaptureFramesStayOnOneNode(DispatcherTest):
    """Non-IP frames on a tap port are never cached; a ring rewrite still does not move a
    MAC pair that keeps talking (it holds its ring entry)."""

    def runTest(self) -> None:
        self.setup_capture_service()
        self.set_timers(cache_timeout_us=1_500_000, digest_retry_us=1_000_000)
        arp = Ether(src="00:00:00:00:10:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="172.16.0.1", pdst="172.16.0.2")
        node = self.send_and_port(TAP_PORT, arp)
        other = next(b for b, p in BACKENDS.items() if p != node)
        self.rewrite_ring(other)
        for _ in range(3):
            time.sleep(0.5)
            self.assertEqual(self.send_and_port(TAP_PORT, arp), node, "the pair moved while it kept talking")
        time.sleep(1.8)   # silent for longer than the cache timeout: a new conversation
        self.assertEqual(self.send_and_port(TAP_PORT, arp), BACKENDS[other])


class StatelessUdpFlowAsksOnEveryPacket(OneSetTest):
    """A stateless UDP flow sends a digest (flag COLLISION) with each packet until its entry
    exists, each naming the backend its packets went to."""

    def runTest(self) -> None:
        self.setup_vip_service()
        self.client.write([self.tables.vip_service(VIP, 17, 53, 2, RING_SIZE, ring_base=RING_SIZE)]
                          + self.tables.ring(2, [10, 11, 12, 10] * (RING_SIZE // 4), self.next_generation()))
        self.set_timers(cache_timeout_us=30_000_000, digest_retry_us=10_000_000)
        self.fill_cache()
        ports = [self.send_and_port(CLIENT_PORT, udp_packet(sport=34000, dport=53)) for _ in range(3)]
        self.assertEqual(len(set(ports)), 1)
        digests = self.digests(count=3)
        self.assertEqual(len(digests), 3)
        self.assertTrue(all(d.is_collision and BACKENDS[d.backend_id] == ports[0] for d in digests))
        self.assertEqual({d.key for d in digests}, {(flow_address(CLIENT_IP), flow_address(VIP), 17, 34000, 53)})


class KeyReusedBeforeTheIdleEntryIsDeletedStaysOnOneBackend(DispatcherTest):
    """A flow ends; its activated entry stays until the controller's delete lands. A new flow
    reusing the key then must not be decided by it: that entry goes, and the new flow's next
    packet would be decided again (by the ring, which moved meanwhile). Silent for the idle
    timeout, the entry is deactivated, so the new flow is decided by its own state from its
    first packet and keeps that backend before and after the delete (docs/consistency.md)."""

    def runTest(self) -> None:
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=300_000, digest_retry_us=10_000_000, entry_idle_us=800_000)
        sport = 47000
        for flags in ("S", "A"):
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags=flags)), BACKENDS[10])
        digest = self.digests()[0]
        self.client.write([self.tables.flow(digest.key, backend_id=10, stats_slot=9, entry_id=1)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="PA")), BACKENDS[10])
        self.assertEqual(self.events()[DispatchEvent.EVENT_ENTRY_ACTIVATED], 1)
        time.sleep(1.0)                               # the flow ends: silent past the idle timeout
        self.rewrite_ring(11)
        # The key reused while the idle entry is still there, then the delete lands.
        second = [self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags=f)) for f in ("S", "A")]
        self.client.write([self.tables.flow_delete(digest.key)])
        second += [self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="PA"))]
        self.assertEqual(second, [BACKENDS[11]] * 3, "the new flow changed backend")
        events = self.events()
        self.assertEqual(events[DispatchEvent.EVENT_ENTRY_EXPIRED], 1)
        self.assertEqual(events[DispatchEvent.EVENT_ENTRY_STALE], 2)   # SYN and ACK met the old entry

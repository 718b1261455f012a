"""Flow dispatch: ring, cache, flows table, digests, collisions, expiry."""

from __future__ import annotations

import time

from dispatcher_base import (
    BACKENDS,
    CLIENT_IP,
    CLIENT_PORT,
    RING_SIZE,
    SERVICE_ID,
    VIP,
    DispatcherTest,
    flow_hash,
    tcp_packet,
    udp_packet,
)

from controller.dataplane.constants import DispatchEvent, DropReason
from controller.dataplane.flow_key import ring_slot
from controller.p4runtime.encoding import flow_address


class PendingFlowKeepsBackendAcrossRingRewrite(DispatcherTest):
    """A flow with no `flows` entry yet stays on its backend while the ring changes."""

    def runTest(self) -> None:
        self.setup_vip_service()
        first = self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags="S"))
        other = next(b for b in BACKENDS if BACKENDS[b] != first)
        self.rewrite_ring(other)  # every slot now names another backend
        for flags in ("A", "PA", "PA", "A", "FA"):
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41000, flags=flags)),
                             first, "a packet of the pending flow left on another port")
        # A genuinely new flow follows the rewritten ring.
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=41001, flags="S")),
                         BACKENDS[other])


class DigestMatchesPacket(DispatcherTest):
    """The caller's first ACK yields one digest describing exactly that flow."""

    def runTest(self) -> None:
        self.setup_vip_service()
        port = self.send_and_port(CLIENT_PORT, tcp_packet(sport=42000, flags="S"))
        self.expect_no_digest(0.5)  # half-open: no digest on the SYN
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=42000, flags="A"))
        (digest,) = self.digests()
        self.assertEqual(digest.key, (flow_address(CLIENT_IP), flow_address(VIP), 6, 42000, 80))
        self.assertEqual(str(digest.src_ip), CLIENT_IP)
        self.assertEqual(digest.service_id, SERVICE_ID)
        self.assertEqual(BACKENDS[digest.backend_id], port)
        # The first way of the flow's set: set = the hash's low 16 bits, 4 ways a set.
        self.assertEqual(digest.cache_slot, (flow_hash(CLIENT_IP, VIP, 6, 42000, 80) & 0xFFFF) * 4)
        self.assertEqual(digest.tcp_flags, 0x10)
        self.assertTrue(digest.rtt_valid)
        self.assertFalse(digest.is_retry or digest.is_collision)
        self.assertGreater(digest.timestamp_us, 0)
        # Later packets of the confirmed flow send no more digests (until the retry time).
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=42000, flags="PA", payload=b"GET /"))
        self.expect_no_digest(0.3)


class UdpFlowDigestOnFirstPacket(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(protocol=17, port=53)
        port = self.send_and_port(CLIENT_PORT, udp_packet(sport=5353, dport=53))
        (digest,) = self.digests()
        self.assertEqual(digest.key, (flow_address(CLIENT_IP), flow_address(VIP), 17, 5353, 53))
        self.assertEqual(BACKENDS[digest.backend_id], port)
        self.assertFalse(digest.rtt_valid)


class InstalledFlowOverridesRing(DispatcherTest):
    """A `flows` entry decides, whatever the ring says, and counts into its stats slot."""

    def runTest(self) -> None:
        self.setup_vip_service(ring=[10] * RING_SIZE)
        key = (flow_address(CLIENT_IP), flow_address(VIP), 6, 43000, 80)
        self.client.write([self.tables.flow(key, backend_id=12, stats_slot=77)])
        sizes = []
        for flags in ("A", "PA", "PA"):
            pkt = tcp_packet(sport=43000, flags=flags, payload=b"z" * 10)
            sizes.append(len(pkt))
            self.assertEqual(self.send_and_port(CLIENT_PORT, pkt), BACKENDS[12])
        stats = self.counter("flow_stats")
        self.assertEqual(stats[77].packets, 3)
        self.assertEqual(stats[77].bytes, sum(sizes))
        self.assertEqual(self.events()[DispatchEvent.EVENT_FLOW_TABLE_HIT], 3)
        self.expect_no_digest(0.3)
        installed = self.tables.read_flows(self.client)
        self.assertEqual([(f.key, f.backend_id, f.stats_slot) for f in installed], [(key, 12, 77)])


class LostDigestIsRepeated(DispatcherTest):
    """A confirmed flow whose entry never appears sends its digest again after the retry time."""

    def runTest(self) -> None:
        self.setup_vip_service()
        self.set_timers(cache_timeout_us=5_000_000, digest_retry_us=1_500_000)
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="S"))
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="A"))
        confirmed = time.monotonic()
        (first,) = self.digests()
        self.assertFalse(first.is_retry)
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="PA"))  # too soon
        self.assertLess(time.monotonic() - confirmed, 1.2)
        self.expect_no_digest(0.3)
        time.sleep(max(0.0, 1.7 - (time.monotonic() - confirmed)))
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="PA"))
        (again,) = self.digests()
        self.assertTrue(again.is_retry)
        self.assertEqual((again.key, again.backend_id), (first.key, first.backend_id))
        self.assertEqual(self.events()[DispatchEvent.EVENT_DIGEST_RETRY], 1)


class ExpiredSlotMakesNewFlow(DispatcherTest):
    """Cache slots expire on their own: after the timeout the ring decides again."""

    def runTest(self) -> None:
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=1_500_000, digest_retry_us=1_000_000)
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=46000, flags="S")), BACKENDS[10])
        self.rewrite_ring(11)
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=46000, flags="S")), BACKENDS[10])
        time.sleep(1.8)
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=46000, flags="S")), BACKENDS[11])
        self.assertEqual(self.events()[DispatchEvent.EVENT_NEW_FLOW], 2)


class EmptyRingSlotDropsAndCounts(DispatcherTest):
    def runTest(self) -> None:
        self.client.write([self.tables.vip_service(VIP, 6, 80, SERVICE_ID, RING_SIZE), self.tables.vip(VIP)])
        self.send(CLIENT_PORT, tcp_packet(sport=47000, flags="S"))
        self.expect_nothing()
        self.assertEqual(self.drops(), {DropReason.NO_BACKEND: 1})


class RingSharesFollowEntries(DispatcherTest):
    """Many new flows spread over the backends as the ring says (a 3:1 ring here)."""

    def runTest(self) -> None:
        ring = [10, 10, 10, 11] * (RING_SIZE // 4)
        self.setup_vip_service(ring=ring)
        ports = [self.send_and_port(CLIENT_PORT, tcp_packet(sport=20000 + i, flags="S")) for i in range(120)]
        on_10, on_11 = ports.count(BACKENDS[10]), ports.count(BACKENDS[11])
        self.assertEqual(on_10 + on_11, 120)
        self.assertTrue(60 <= on_10 <= 110, f"3:1 ring gave {on_10}:{on_11}")


class IdleFlowEntryIsReported(DispatcherTest):
    """A `flows` entry with an idle timeout is reported to the controller once idle."""

    def runTest(self) -> None:
        self.setup_vip_service()
        key = (flow_address(CLIENT_IP), flow_address(VIP), 6, 49000, 80)
        self.client.write([self.tables.flow(key, backend_id=11, stats_slot=3, idle_timeout_ns=300_000_000)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=49000, flags="PA")), BACKENDS[11])
        notification = self.client.idle_timeouts.get(timeout=5)
        reported = [self.tables.flow_key_of(e) for e in notification.table_entry]
        self.assertIn(key, reported)


class ClientAffinityPutsAClientsConnectionsOnOneBackend(DispatcherTest):
    """`affinity = "client"`: the ring slot is a hash of the client's address, so a client's
    connections, whatever their ports, go where its first went; another client may go
    elsewhere; the same service without it spreads that client's connections."""

    def runTest(self) -> None:
        self.setup_vip_service()                      # ring 10, 11, 12, 10, ...
        spread = {self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000 + i)) for i in range(12)}
        self.assertGreater(len(spread), 1, "flow affinity: one client's connections spread")
        self.client.write([self.tables.client_affinity(SERVICE_ID)])
        clients = ["10.0.1.1", "10.0.1.7", "10.0.1.9", "10.0.1.20"]
        for client in clients:
            ports = {self.send_and_port(CLIENT_PORT, tcp_packet(src=client, sport=46000 + i, dport=80))
                     for i in range(8)}
            self.assertEqual(len(ports), 1, f"{client}'s connections went to {ports}")
            key = (flow_address(client), flow_address(VIP), 6, 46000, 80)
            expected = list(BACKENDS)[ring_slot(key, RING_SIZE, by_client=True) % len(BACKENDS)]
            self.assertEqual(ports, {BACKENDS[expected]}, "the slot is not the client address's hash")

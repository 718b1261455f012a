"""The ACTIVATED digest (docs/multiswitch.md, rule 3): a `flows` entry whose id carries
ENTRY_ID_REPORT_ACTIVATION sends one digest, flagged DIGEST_FLAG_ACTIVATED, when a packet
activates it; an entry without the bit (every single-switch entry) activates silently, and
an entry that is not activated (an earlier flow's: stale) reports nothing of the kind."""

from __future__ import annotations

from dispatcher_base import BACKENDS, CLIENT_PORT, RING_SIZE, DispatcherTest, tcp_packet

from controller.dataplane.constants import ENTRY_ID_REPORT_ACTIVATION, DispatchEvent

LONG_US = 10_000_000     # no cache expiry and no digest repeat within a test


class ReplicationTest(DispatcherTest):
    def confirmed_flow(self, sport: int):
        """A connection to backend 10 (the ring's only one) up to its confirming ACK; its digest."""
        self.setup_vip_service(ring=[10] * RING_SIZE)
        self.set_timers(cache_timeout_us=LONG_US, digest_retry_us=LONG_US)
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="S")), BACKENDS[10])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=sport, flags="A")), BACKENDS[10])
        digest = self.digests()[0]
        self.assertFalse(digest.is_activated, digest)
        return digest


class ActivationIsReportedOnceWhenTheIdAsks(ReplicationTest):
    def runTest(self) -> None:
        digest = self.confirmed_flow(45000)
        self.client.write([self.tables.flow(digest.key, backend_id=10, stats_slot=7,
                                            entry_id=ENTRY_ID_REPORT_ACTIVATION | 1)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="PA", payload=b"x")),
                         BACKENDS[10])
        reported = self.digests()
        self.assertEqual(len(reported), 1, reported)
        self.assertTrue(reported[0].is_activated, reported[0])
        self.assertEqual((reported[0].key, reported[0].backend_id), (digest.key, 10))
        # Once: the next packets find the entry activated and say nothing.
        for _ in range(3):
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=45000, flags="A")), BACKENDS[10])
        self.expect_no_digest()
        events = self.events()
        self.assertEqual(events[DispatchEvent.EVENT_ENTRY_ACTIVATED], 1)
        self.assertEqual(events[DispatchEvent.EVENT_DIGEST], 2)   # the confirming one and ACTIVATED


class ActivationWithoutTheBitIsSilent(ReplicationTest):
    """What a single switch's controller writes: no digest more than before."""

    def runTest(self) -> None:
        digest = self.confirmed_flow(45001)
        self.client.write([self.tables.flow(digest.key, backend_id=10, stats_slot=7, entry_id=1)])
        self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=45001, flags="PA", payload=b"x")),
                         BACKENDS[10])
        self.expect_no_digest()
        self.assertEqual(self.events()[DispatchEvent.EVENT_ENTRY_ACTIVATED], 1)


class StaleEntryReportsNoActivation(ReplicationTest):
    """An entry naming another backend than the flow's state (an earlier flow's) is not
    taken over, so no replica may follow from it: no ACTIVATED digest, whatever its id."""

    def runTest(self) -> None:
        digest = self.confirmed_flow(45002)
        self.client.write([self.tables.flow(digest.key, backend_id=11, stats_slot=7,
                                            entry_id=ENTRY_ID_REPORT_ACTIVATION | 2)])
        for _ in range(2):
            self.assertEqual(self.send_and_port(CLIENT_PORT, tcp_packet(sport=45002, flags="A")), BACKENDS[10])
        self.assertFalse(any(d.is_activated for d in self.digests(timeout=0.5)))
        events = self.events()
        self.assertEqual(events.get(DispatchEvent.EVENT_ENTRY_ACTIVATED, 0), 0)
        self.assertEqual(events[DispatchEvent.EVENT_ENTRY_STALE], 2)

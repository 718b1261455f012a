"""SA2C admission levels, each against new and established flows."""

from __future__ import annotations

import time

from dispatcher_base import BACKENDS, CLIENT_IP, CLIENT_PORT, SERVICE_ID, VIP, DispatcherTest, tcp_packet

from controller.dataplane.constants import AdmissionLevel, DropReason
from controller.p4runtime.encoding import flow_address


class AdmissionTest(DispatcherTest):
    """An established flow (installed entry, sport 50000) beside new flows (SYNs)."""

    ESTABLISHED_SPORT = 50000

    def setUp(self) -> None:
        super().setUp()
        self.setup_vip_service()
        key = (flow_address(CLIENT_IP), flow_address(VIP), 6, self.ESTABLISHED_SPORT, 80)
        self.client.write([self.tables.flow(key, backend_id=10, stats_slot=1)])

    def established_passes(self, n: int = 1) -> int:
        passed = 0
        for _ in range(n):
            self.send(CLIENT_PORT, tcp_packet(sport=self.ESTABLISHED_SPORT, flags="PA"))
            passed += self.receive(0.5) is not None
        return passed

    def new_flows_pass(self, n: int, first_sport: int = 30000) -> int:
        passed = 0
        for i in range(n):
            self.send(CLIENT_PORT, tcp_packet(sport=first_sport + i, flags="S"))
            passed += self.receive(0.5) is not None
        return passed


class AdmitAll(AdmissionTest):
    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.ADMIT_ALL)
        self.assertEqual(self.new_flows_pass(5), 5)
        self.assertEqual(self.established_passes(3), 3)
        self.assertEqual(self.drops(), {})


class DropNewWithProbability(AdmissionTest):
    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.DROP_NEW_PROB, drop_prob=0.5)
        passed = self.new_flows_pass(200)
        # Binomial(200, 0.5): mean 100, sd 7.1; 55..145 is over six sd either side.
        self.assertTrue(55 <= passed <= 145, f"{passed} of 200 new flows admitted at p=0.5")
        self.assertEqual(self.established_passes(20), 20)
        self.assertEqual(self.drops()[DropReason.ADMISSION_NEW], 200 - passed)
        # p = 0 at the same level admits everything.
        self.client.write([self.tables.admission(1, AdmissionLevel.DROP_NEW_PROB, 0.0, kind="modify")])
        self.assertEqual(self.new_flows_pass(20, first_sport=31000), 20)


class EstablishedOnly(AdmissionTest):
    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.ESTABLISHED_ONLY)
        self.assertEqual(self.new_flows_pass(10), 0)
        self.assertEqual(self.established_passes(5), 5)
        self.assertEqual(self.drops(), {DropReason.ADMISSION_NEW: 10})


class DegradeEstablished(AdmissionTest):
    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.DEGRADE_ESTABLISHED, drop_prob=0.5)
        self.assertEqual(self.new_flows_pass(10), 0)
        passed = self.established_passes(200)
        self.assertTrue(55 <= passed <= 145, f"{passed} of 200 established packets passed at p=0.5")
        drops = self.drops()
        self.assertEqual(drops[DropReason.ADMISSION_NEW], 10)
        self.assertEqual(drops[DropReason.ADMISSION_ESTABLISHED], 200 - passed)


class RejectAll(AdmissionTest):
    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.REJECT_ALL)
        self.assertEqual(self.new_flows_pass(5), 0)
        self.assertEqual(self.established_passes(5), 0)
        self.assertEqual(self.drops(), {DropReason.ADMISSION_NEW: 5,
                                        DropReason.ADMISSION_ESTABLISHED: 5})


class MidStreamPacketWithoutStateIsEstablished(AdmissionTest):
    """A TCP data packet with no entry and no cache slot is an established connection
    (e.g. after the controller lost it): "established only" lets it through."""

    def runTest(self) -> None:
        self.set_admission(AdmissionLevel.ESTABLISHED_ONLY)
        self.send(CLIENT_PORT, tcp_packet(sport=50500, flags="PA"))
        got = self.receive(1.0)
        self.assertIsNotNone(got)
        self.assertIn(got[0], BACKENDS.values())


class NewFlowMeter(AdmissionTest):
    """The new-flow bucket at 1 flow/s, burst 3: of 20 SYNs sent at once about 3 get in, at
    ADMIT_ALL as at DROP_NEW_PROB; established packets are never metered; set back to its
    default, it admits everything."""

    def burst_of_syns(self, n: int, first_sport: int) -> int:
        for i in range(n):
            self.send(CLIENT_PORT, tcp_packet(sport=first_sport + i, flags="S"))
        passed = 0
        while self.receive(0.5) is not None:
            passed += 1
        return passed

    def runTest(self) -> None:
        self.client.write([self.tables.new_flow_meter(SERVICE_ID, 1.0, burst=3)])
        passed = self.burst_of_syns(20, 30000)
        self.assertTrue(3 <= passed <= 5, f"{passed} of 20 SYNs passed a 1/s bucket of 3")
        self.assertEqual(self.established_passes(10), 10)
        self.assertEqual(self.drops(), {DropReason.ADMISSION_NEW: 20 - passed})
        time.sleep(3.5)                                   # the bucket fills again (3 tokens)
        self.set_admission(AdmissionLevel.DROP_NEW_PROB, drop_prob=0.0)
        passed = self.burst_of_syns(20, 31000)
        self.assertTrue(3 <= passed <= 5, f"{passed} of 20 SYNs passed the bucket at DROP_NEW_PROB")
        self.client.write([self.tables.new_flow_meter(SERVICE_ID, None)])
        self.assertEqual(self.burst_of_syns(20, 32000), 20)

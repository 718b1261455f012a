"""RTT sample: the caller's last SYN to its first ACK, measured in the data plane."""

from __future__ import annotations

import time

from dispatcher_base import CLIENT_PORT, TAP_PORT, DispatcherTest, tcp_packet

DELAY_S = 0.30


class RttSampleMatchesInjectedDelay(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service()
        self.send_and_port(CLIENT_PORT, tcp_packet(sport=48000, flags="S"))
        time.sleep(0.2)
        # A retransmitted SYN restarts the measurement: RTT runs from the caller's last SYN.
        self.send(CLIENT_PORT, tcp_packet(sport=48000, flags="S"))
        sent_syn = time.monotonic()
        self.expect_one()
        time.sleep(max(0.0, DELAY_S - (time.monotonic() - sent_syn)))
        self.send(CLIENT_PORT, tcp_packet(sport=48000, flags="A"))
        self.expect_one()
        (digest,) = self.digests()
        self.assertTrue(digest.rtt_valid)
        rtt_s = digest.rtt_us / 1e6
        # The switch sees both packets a little after they were sent; allow 50 ms of jitter.
        self.assertGreaterEqual(rtt_s, DELAY_S - 0.05, f"RTT {rtt_s:.3f} s for a {DELAY_S} s delay")
        self.assertLessEqual(rtt_s, DELAY_S + 0.05, f"RTT {rtt_s:.3f} s for a {DELAY_S} s delay")


class SynAckDoesNotStartRtt(DispatcherTest):
    """In capture mode the callee's SYN-ACK is no caller SYN: RTT stays SYN -> ACK."""

    def runTest(self) -> None:
        self.setup_capture_service()
        a, b = "172.16.0.1", "172.16.0.2"
        self.send(TAP_PORT, tcp_packet(src=a, dst=b, sport=1234, dport=80, flags="S"))
        syn_sent = time.monotonic()
        self.expect_one()
        time.sleep(max(0.0, 0.3 - (time.monotonic() - syn_sent)))
        self.send(TAP_PORT, tcp_packet(src=b, dst=a, sport=80, dport=1234, flags="SA"))
        synack_sent = time.monotonic()
        self.expect_one()
        time.sleep(max(0.0, 0.3 - (time.monotonic() - synack_sent)))
        self.send(TAP_PORT, tcp_packet(src=a, dst=b, sport=1234, dport=80, flags="A"))
        ack_sent = time.monotonic()
        self.expect_one()
        (digest,) = self.digests()
        # From the SYN (about 0.6 s), not from the SYN-ACK (about 0.3 s).
        self.assertAlmostEqual(digest.rtt_us / 1e6, ack_sent - syn_sent, delta=0.05)

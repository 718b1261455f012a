"""Counters equal what was sent: per port in and out, per backend, per flow."""

from __future__ import annotations

from dispatcher_base import BACKENDS, CLIENT_PORT, RING_SIZE, DispatcherTest, tcp_packet


class CountersEqualTraffic(DispatcherTest):
    def runTest(self) -> None:
        self.setup_vip_service(ring=[10, 11] * (RING_SIZE // 2))
        sent_bytes = 0
        per_port: dict[int, list[int]] = {}
        for i in range(40):
            pkt = tcp_packet(sport=21000 + i, flags="S", payload=b"q" * (i % 7))
            sent_bytes += len(pkt)
            port = self.send_and_port(CLIENT_PORT, pkt)
            per_port.setdefault(port, []).append(len(pkt))
        port_in = self.counter("port_in")
        self.assertEqual(port_in[CLIENT_PORT].packets, 40)
        self.assertEqual(port_in[CLIENT_PORT].bytes, sent_bytes)
        port_out = self.counter("port_out")
        backend = self.counter("backend_traffic")
        for b, port in BACKENDS.items():
            lengths = per_port.get(port, [])
            if not lengths:
                self.assertNotIn(port, port_out)
                continue
            self.assertEqual(port_out[port].packets, len(lengths))
            self.assertEqual(port_out[port].bytes, sum(lengths))  # DSR keeps the length
            self.assertEqual(backend[b].packets, len(lengths))
            self.assertEqual(backend[b].bytes, sum(lengths))
        self.assertEqual(sum(c.packets for c in port_out.values()), 40)
        self.assertEqual(self.drops(), {})

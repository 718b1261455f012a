"""The data-plane demo: the dispatcher on BMv2 with a sample configuration, real packets.

The data plane alone, without Mininet or the controller's loop (`python -m controller
demo-dataplane`; the main job is the cluster demo): it compiles the program, starts
simple_switch_grpc on veth pairs, loads the pipeline and a sample VIP service (three DSR
backends, ring weights 2:1:1), opens TCP flows through it, installs `flows` entries from
the digests with the backend the switch chose (the controller's flow manager), and prints where every flow went and what
the switch counted. Everything it made is removed on exit.
"""

from __future__ import annotations

import random
import socket
import time
from collections import Counter

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from controller.dataplane.constants import DispatchEvent, DropReason
from controller.dataplane.dispatcher_tables import DispatcherTables
from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason
from topo.flow_installer import FlowInstaller

VIP = "10.0.0.100"
CLIENT_PORT = 1
BACKENDS = {10: 2, 11: 3, 12: 4}        # backend id -> switch port
RING = [10, 10, 11, 12] * 16            # weights 2:1:1 over 64 slots


def sample_configuration(tables: DispatcherTables) -> list:
    updates = [tables.vip_service(VIP, 6, 80, 1, len(RING)), tables.vip(VIP),
               tables.flow_digest_config(max_list_size=64, max_timeout_ns=5_000_000)]
    updates += [tables.backend_dsr(b, p, f"02:00:00:00:00:{b:02x}") for b, p in BACKENDS.items()]
    updates += tables.ring(1, RING, generation=1)
    return updates


def _flow_packet(i: int, flags: str) -> bytes:
    # Clients as in life: scattered addresses and ephemeral ports. (Addresses and ports that
    # step together, as i and i + 30000 would, hash unevenly: CRC is linear. See
    # docs/dataplane.md.)
    client = random.Random(i)
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:fe")
                 / IP(src=f"192.168.{client.randrange(256)}.{client.randrange(1, 255)}", dst=VIP)
                 / TCP(sport=client.randrange(32768, 61000), dport=80, flags=flags)
                 / (b"GET / HTTP/1.0\r\n\r\n" if flags == "PA" else b""))


def run(flows: int = 60) -> int:
    reason = missing_testbed_reason()
    if reason:
        print(f"demo cannot run here: {reason}")
        return 77
    with Bmv2Testbed(ports=[CLIENT_PORT, *BACKENDS.values()]) as testbed:
        client, info = testbed.connect()
        assert testbed.compiled is not None and testbed.switch is not None   # connect() needs both
        tables = DispatcherTables(info)
        try:
            client.write(sample_configuration(tables))
            print(f"loaded {testbed.compiled.bmv2_json.name} into simple_switch_grpc at "
                  f"{testbed.switch.grpc_address}; VIP {VIP}:80, backends {sorted(BACKENDS)}, ring 2:1:1")
            receivers = {}
            for b, port in BACKENDS.items():
                # ETH_P_ALL with the bind, not at creation (a socket created with it captures
                # every interface until bound).
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
                s.bind((testbed.host_interface(port), 0x0003))
                s.setblocking(False)
                receivers[b] = s
            sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sender.bind((testbed.host_interface(CLIENT_PORT), 0))
            installer = FlowInstaller(client, tables, idle_timeout_ns=10**10)
            installer.start()
            for flags in ("S", "A", "PA"):          # handshake, confirmation, data
                for i in range(flows):
                    sender.send(_flow_packet(i, flags))
            time.sleep(1.0)
            installer.stop()
            installed = len(installer.installed)
            for i in range(flows):                  # now served by the `flows` table
                sender.send(_flow_packet(i, "PA"))
            time.sleep(1.0)
            received: Counter[int] = Counter()   # backend id -> TCP frames
            for b, s in receivers.items():
                while True:
                    try:
                        frame = s.recv(65535)
                    except BlockingIOError:
                        break
                    if frame[23] == 6:  # TCP over IPv4, our flows
                        received[b] += 1
                s.close()
            sender.close()
            backend = tables.read_counter(client, "backend_traffic")
            events = {DispatchEvent(i).name: c.packets
                      for i, c in tables.read_counter(client, "dispatch_events").items()}
            drops = {DropReason(i).name: c.packets for i, c in tables.read_counter(client, "drops").items()}
        finally:
            client.close()
    print(f"\n{flows} flows x 4 packets; {installed} flows entries installed from digests\n")
    print(f"{'backend':>8} {'port':>5} {'ring share':>11} {'packets seen':>13} {'switch counted':>15}")
    for b, port in BACKENDS.items():
        share = RING.count(b) / len(RING)
        counted = backend[b].packets if b in backend else 0
        print(f"{b:>8} {port:>5} {share:>11.0%} {received[b]:>13} {counted:>15}")
    print(f"\nevents: {events}\ndrops: {drops or 'none'}")
    return 0

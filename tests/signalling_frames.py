"""Signalling conversations as Ethernet frames, for the session-affinity tests."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"   # given: scapy would ARP for them


def ftp_frames(client: str, server: str, pasv_port: int, client_port: int = 40000) -> list[bytes]:
    """An FTP control conversation: handshake, 220, PASV, 227 naming `pasv_port`, QUIT, 221,
    the client's FIN (frames[:5] end with the 227, frames[5:] close the session)."""
    c2s = Ether(src=MAC_A, dst=MAC_B) / IP(src=client, dst=server)
    s2c = Ether(src=MAC_B, dst=MAC_A) / IP(src=server, dst=client)
    seq = {"c": 1000, "s": 5000}
    frames = [bytes(c2s / TCP(sport=client_port, dport=21, flags="S", seq=999)),
              bytes(s2c / TCP(sport=21, dport=client_port, flags="SA", seq=4999, ack=1000))]

    def say(side: str, text: bytes) -> None:
        if side == "c":
            layer = c2s / TCP(sport=client_port, dport=21, flags="PA", seq=seq["c"])
        else:
            layer = s2c / TCP(sport=21, dport=client_port, flags="PA", seq=seq["s"])
        frames.append(bytes(layer / text))
        seq[side] += len(text)

    say("s", b"220 ready\r\n")
    say("c", b"PASV\r\n")
    p1, p2 = divmod(pasv_port, 256)
    octets = server.replace(".", ",")
    say("s", f"227 Entering Passive Mode ({octets},{p1},{p2}).\r\n".encode())
    say("c", b"QUIT\r\n")
    say("s", b"221 bye\r\n")
    frames.append(bytes(c2s / TCP(sport=client_port, dport=21, flags="FA", seq=seq["c"])))
    return frames

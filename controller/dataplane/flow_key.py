"""The data plane's flow key, computed in Python from an Ethernet frame.

Mirrors p4src/v1model/flow_key.p4: IPv4 addresses IPv4-mapped into 128 bits, ports only
on unfragmented TCP/UDP (or a first fragment), non-IP frames keyed by their MAC pair, and
in symmetric (capture) mode the two endpoints sorted.
"""

from __future__ import annotations

import struct
import zlib

from controller.dataplane.constants import IPV4_MAPPED_PREFIX

FlowKey = tuple[int, int, int, int, int]   # src_addr, dst_addr, protocol, src_port, dst_port
_PORTS = struct.Struct(">BHH")


def pack_key(key: FlowKey) -> bytes:
    """The key's 37 bytes as the data plane lays them out (128-bit addresses)."""
    src, dst, protocol, src_port, dst_port = key
    return src.to_bytes(16, "big") + dst.to_bytes(16, "big") + _PORTS.pack(protocol, src_port, dst_port)


def unpack_key(packed: bytes) -> FlowKey:
    protocol, src_port, dst_port = _PORTS.unpack_from(packed, 32)
    return (int.from_bytes(packed[:16], "big"), int.from_bytes(packed[16:32], "big"),
            protocol, src_port, dst_port)


def key_hash(key: FlowKey) -> int:
    """The data plane's CRC32 over the key: ring slot and cache slot are its low bits."""
    return zlib.crc32(pack_key(key))


def ring_slot(key: FlowKey, ring_size: int, by_client: bool = False) -> int:
    """The ring slot the data plane takes for a key: the hash's high 16 bits, masked; with
    client affinity (`affinity = "client"`) the hash of the source address alone."""
    hashed = zlib.crc32(key[0].to_bytes(16, "big")) if by_client else key_hash(key)
    return (hashed >> 16) & (ring_size - 1)


def flow_key(frame: bytes, symmetric: bool = False) -> FlowKey | None:
    """The key of a frame, or None when it is too short to have one."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    offset = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype = int.from_bytes(frame[16:18], "big")
        offset = 18
    ports_at = None
    if ethertype == 0x0800 and len(frame) >= offset + 20:
        ihl = (frame[offset] & 0x0F) * 4
        protocol = frame[offset + 9]
        src = IPV4_MAPPED_PREFIX | int.from_bytes(frame[offset + 12:offset + 16], "big")
        dst = IPV4_MAPPED_PREFIX | int.from_bytes(frame[offset + 16:offset + 20], "big")
        frag_offset = int.from_bytes(frame[offset + 6:offset + 8], "big") & 0x1FFF
        if frag_offset == 0 and protocol in (6, 17):
            ports_at = offset + ihl
    elif ethertype == 0x86DD and len(frame) >= offset + 40:
        protocol = frame[offset + 6]
        src = int.from_bytes(frame[offset + 8:offset + 24], "big")
        dst = int.from_bytes(frame[offset + 24:offset + 40], "big")
        if protocol in (6, 17):
            ports_at = offset + 40
    else:
        protocol = 0
        dst = int.from_bytes(frame[0:6], "big")
        src = int.from_bytes(frame[6:12], "big")
    sport = dport = 0
    if ports_at is not None and len(frame) >= ports_at + 4:
        sport = int.from_bytes(frame[ports_at:ports_at + 2], "big")
        dport = int.from_bytes(frame[ports_at + 2:ports_at + 4], "big")
    if symmetric and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    return (src, dst, protocol, sport, dport)

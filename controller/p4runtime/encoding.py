"""Values to and from P4Runtime's byte strings, and the address forms the program uses."""

from __future__ import annotations

import ipaddress

from controller.dataplane.constants import IPV4_MAPPED_PREFIX


def encode_int(value: int, bitwidth: int) -> bytes:
    """Canonical P4Runtime bytes: big-endian, no leading zero bytes (0 is one zero byte)."""
    if value < 0 or value >= 1 << bitwidth:
        raise ValueError(f"{value} does not fit in {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode_int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def flow_address(address: str | int | ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """An address as the data plane's 128-bit flow-key field: IPv4 is IPv4-mapped."""
    if isinstance(address, int):
        return address
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return IPV4_MAPPED_PREFIX | int(ip)
    return int(ip)


def address_from_flow(value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The inverse of flow_address."""
    ip = ipaddress.IPv6Address(value)
    return ip.ipv4_mapped or ip


def mac_to_int(mac: str) -> int:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    return int("".join(parts), 16)


def ipv4_to_int(address: str) -> int:
    return int(ipaddress.IPv4Address(address))

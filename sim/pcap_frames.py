"""Moved to controller/pcap_frames.py (the controller's `sessions --pcap` reads captures
too, and the runtime never imports the simulator); these names stay importable from here."""

from controller.pcap_frames import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_RAW,
    SUPPORTED_LINKTYPES,
    SYNTH_DST_MAC,
    SYNTH_SRC_MAC,
    CaptureError,
    Frame,
    read_frames,
    to_ethernet,
)

__all__ = [
    "ETHERTYPE_IPV4", "ETHERTYPE_IPV6", "LINKTYPE_C_HDLC", "LINKTYPE_ETHERNET", "LINKTYPE_IPV4", "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL", "LINKTYPE_LINUX_SLL2", "LINKTYPE_NULL", "LINKTYPE_PPP", "LINKTYPE_RAW",
    "SUPPORTED_LINKTYPES", "SYNTH_DST_MAC", "SYNTH_SRC_MAC", "CaptureError", "Frame", "read_frames", "to_ethernet",
]

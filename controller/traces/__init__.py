"""Packet traces: reading captures into Ethernet frames for replay and simulation."""

"""Test topologies: veth pairs for PTF and replay, Mininet networks for the demo."""

"""Counting connections from the servers' logs: a reused client port is a new connection, and
only records that overlap in time on two servers are a split connection."""

from __future__ import annotations

from workload.connections import count_connections

VIP = "10.0.0.100:80"


def record(client: str, start: float, seconds: float, address: str = VIP) -> dict:
    return {"client": client, "server_address": address, "time": start, "seconds": seconds,
            "status": 200, "bytes": 1000}


def test_a_port_reused_after_the_connection_closed_is_a_new_connection_not_a_split():
    # 10.0.1.1:40000 served by web1 at t=100 for 0.2 s, then reused 17 s later and sent to web2.
    logs = {"web1": [record("10.0.1.1:40000", 100.0, 0.2), record("10.0.1.2:40001", 100.5, 1.0)],
            "web2": [record("10.0.1.1:40000", 117.0, 0.3)]}
    count = count_connections(logs)
    assert count.records == 3
    assert len(count.connections) == 3
    assert count.reused_ports == 1
    assert count.split == []
    reused = [c for c in count.connections if c.client == "10.0.1.1:40000"]
    assert [(c.servers, c.start) for c in reused] == [(("web1",), 100.0), (("web2",), 117.0)]


def test_records_that_overlap_in_time_on_two_servers_are_one_split_connection():
    # The same connection's packets reached web1 and web3 (web3's record starts while web1's
    # is still open), and the same port is reused later, on web2, cleanly.
    logs = {"web1": [record("10.0.1.1:40000", 100.0, 2.0)],
            "web3": [record("10.0.1.1:40000", 100.4, 30.0)],
            "web2": [record("10.0.1.1:40000", 150.0, 0.1), record("10.0.1.3:50000", 100.0, 0.1)]}
    count = count_connections(logs)
    assert len(count.connections) == 3
    assert len(count.split) == 1
    split = count.split[0]
    assert split.client == "10.0.1.1:40000" and sorted(split.servers) == ["web1", "web3"]
    assert (split.start, split.end) == (100.0, 130.4)
    assert count.reused_ports == 1


def test_the_same_client_port_to_two_server_addresses_is_two_connections():
    # A client may use one local port towards two destinations at once (the capacity probe
    # fetches from each backend's own address): different connections, no split.
    logs = {"web1": [record("10.0.1.1:40000", 100.0, 1.0, "10.0.2.1:80")],
            "web2": [record("10.0.1.1:40000", 100.5, 1.0, "10.0.2.2:80")]}
    count = count_connections(logs)
    assert len(count.connections) == 2 and count.split == [] and count.reused_ports == 0


def test_an_older_log_without_server_addresses_still_counts():
    logs = {"web1": [{"client": "10.0.1.1:40000", "time": 1.0, "seconds": 0.5}],
            "web2": [{"client": "10.0.1.1:40000", "time": 1.2, "seconds": 0.5}]}
    assert len(count_connections(logs).split) == 1
    assert count_connections({}).connections == []

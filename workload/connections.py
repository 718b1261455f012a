"""Connections as the servers logged them, and whether any was split between two servers.

A connection is (client address, client port, server address, server port) over a span of
time. Clients reuse ephemeral ports: once a connection has closed, the same client port
may open a new one to the same VIP seconds later, and the dispatcher may rightly send that
new connection to another server. So records of one client port on two servers are a split
connection only if their time spans overlap; one after the other they are two connections.

The records are workload.http_server's log lines: `client` ("ip:port"), `server_address`
("ip:port" the client connected to; absent in logs older than the field), `time` (start,
epoch seconds) and `seconds` (duration).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Connection:
    client: str                   # "ip:port" of the client
    server_address: str           # "ip:port" it connected to ("" when the log does not say)
    start: float                  # epoch seconds, the earliest record's start
    end: float                    # the latest record's end
    servers: tuple[str, ...]      # the server of each record that makes up the connection

    @property
    def split(self) -> bool:
        """Served (in part) by two servers: the per-connection consistency the dispatcher
        promises was broken."""
        return len(set(self.servers)) > 1


@dataclass(frozen=True)
class ConnectionCount:
    records: int                  # log lines read
    connections: list[Connection]
    reused_ports: int             # client endpoints that opened more than one connection, in turn

    @property
    def split(self) -> list[Connection]:
        return [c for c in self.connections if c.split]


def count_connections(logs: Mapping[str, Iterable[dict]]) -> ConnectionCount:
    """Connections from each server's log records (server name -> records).

    Records of one (client, server address) whose time spans overlap or touch are one
    connection; a record that starts after the previous connection of that port ended
    starts a new one.
    """
    spans: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)
    records = 0
    for server, lines in logs.items():
        for record in lines:
            records += 1
            start = float(record["time"])
            end = start + max(float(record.get("seconds") or 0.0), 0.0)
            spans[(record["client"], record.get("server_address") or "")].append((start, end, server))
    connections: list[Connection] = []
    reused = 0
    for (client, address), found in spans.items():
        found.sort()
        mine: list[Connection] = []
        start, end, servers = found[0][0], found[0][1], [found[0][2]]
        for s, e, server in found[1:]:
            if s <= end:                       # overlaps the connection so far: the same one
                end = max(end, e)
                servers.append(server)
            else:                              # after it closed: the port was reused
                mine.append(Connection(client, address, start, end, tuple(servers)))
                start, end, servers = s, e, [server]
        mine.append(Connection(client, address, start, end, tuple(servers)))
        reused += len(mine) > 1
        connections += mine
    connections.sort(key=lambda c: c.start)
    return ConnectionCount(records, connections, reused)

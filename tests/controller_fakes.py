"""What tests feed a controller in place of the world: digest lists as the switch sends them,
and backend agents (the real `p4dispatch agent` code) run as threads on loopback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from finsy.proto import p4r

from agent.agent import Agent, AgentSettings
from agent.host_sampler import Sample
from controller.dataplane.flow_digest import FIELDS
from controller.p4runtime.encoding import encode_int


def digest_list(flows: Iterable[dict[str, int]]) -> p4r.DigestList:
    """One DigestList with a flow digest per dict (fields not given are 0)."""
    msg = p4r.DigestList(digest_id=1, list_id=1)
    for flow in flows:
        data = msg.data.add()
        for name in FIELDS:
            data.struct.members.add().bitstring = encode_int(flow.get(name, 0), 128)
    return msg


def idle_host() -> Sample:
    return Sample(tx_bytes=0, tx_packets=0, cpu_percent=10.0, memory_percent=10.0, load_average=0.1,
                  cpus=1, connections=0)


@contextmanager
def agent_thread(port: int, host_id: int, period: float,
                 sample: Callable[[], Sample] = idle_host) -> Iterator[threading.Event]:
    """An agent sending heartbeats and reports to 127.0.0.1:port every `period` s until the
    block ends; setting the yielded event silences it earlier (a dead agent)."""
    agent = Agent(AgentSettings(("127.0.0.1", port), host_id, period), sample, lambda: (True, ""))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=5)
        agent.close()

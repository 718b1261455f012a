"""One switch of several (docs/multiswitch.md): connect with today's back-off, become primary,
push the pipeline (unless the serving loop is taking over running switches and this one runs
the program already), and hand the session to the serving loop; when the session ends, again.

Runs on a thread of its own so that a switch that is down or slow to answer never holds the
serving loop or the other switches up. It only ever talks to its own switch; everything
that touches the controller's state (configuration, rings, flows) is the serving loop's,
which takes the handed-over sessions from `arrivals`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.config import Switch
from controller.p4runtime import P4InfoIndex, P4RuntimeClient, P4RuntimeError
from controller.p4runtime.targets import Program
from controller.takeover import wait_primary

log = logging.getLogger("controller")

BACKOFF_FIRST_S = 0.25      # the single-switch controller's back-off (controller/app.py)
BACKOFF_LONGEST_S = 4.0
SESSION_TIMEOUT_S = 5.0


@dataclass
class Handover:
    """A primary session for the serving loop: with a fresh pipeline, or (`fresh` False) with
    the switch running as it was, to adopt. The loop sets `released` once it closed the
    session (after its own reads on it stopped), and the supervisor reconnects."""
    name: str
    client: P4RuntimeClient
    fresh: bool = True
    released: threading.Event = field(default_factory=threading.Event)


class SwitchSupervisor:
    def __init__(self, name: str, switch: Switch, program: Program, info: P4InfoIndex,
                 arrivals: queue.Queue[Handover], wakeup: threading.Event,
                 may_adopt: Callable[[], bool] = lambda: False,
                 before_push: Callable[[str], None] = lambda name: None) -> None:
        """`may_adopt`: whether the serving loop is still taking over running switches;
        `before_push`: called before a pipeline push wipes the switch (out of ECMP first)."""
        self.name = name
        self.may_adopt = may_adopt
        self.before_push = before_push
        self.switch = switch
        self.program = program
        self.info = info
        self.arrivals = arrivals
        self.wakeup = wakeup
        self.connects = 0
        self.pipeline_pushes = 0
        self.state = "connecting"      # connecting, backup, serving
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self.run, args=(stop,), name=f"supervisor-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, stop: threading.Event) -> None:
        delay = BACKOFF_FIRST_S
        sw = self.switch
        while not stop.is_set():
            client = P4RuntimeClient(sw.grpc_address, sw.device_id, sw.election_id, timeout=SESSION_TIMEOUT_S)
            # One event for every switch's stream and writes: the serving loop waits on all at once.
            client.activity = self.wakeup
            try:
                client.connect()
            except P4RuntimeError as exc:
                self.state = "connecting"
                log.warning("switch %s unreachable (%s); retrying in %.2f s", self.name, exc, delay)
                client.close()
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_LONGEST_S)
                continue
            delay = BACKOFF_FIRST_S
            handed: Handover | None = None
            try:
                if not client.is_primary:
                    self.state = "backup"
                if wait_primary(client, stop, meanwhile=lambda: None):
                    running = client.pipeline_cookie() == self.program.cookie()
                    fresh = not (running and self.may_adopt())
                    if fresh:
                        if running:
                            self.before_push(self.name)     # it may carry traffic: out of ECMP first
                        self._push(client)
                    else:
                        log.info("switch %s runs %s: handed over to be adopted", self.name, self.program.label)
                    self.state = "serving"
                    self.connects += 1
                    handed = Handover(self.name, client, fresh)
                    self.arrivals.put(handed)
                    self.wakeup.set()
                    # The serving loop owns the session now, and closes it when it gives it up
                    # (a lost stream, a failed write): closing it here could cut its reads short.
                    while not stop.is_set() and not handed.released.wait(0.1):
                        pass
            except P4RuntimeError as exc:
                log.error("switch %s: %s", self.name, exc)
            finally:
                if handed is None:
                    client.close()     # else the serving loop's to close, at its end too
            if not stop.is_set():
                self.state = "connecting"
                log.warning("reconnecting to switch %s at %s", self.name, sw.grpc_address)
                stop.wait(BACKOFF_FIRST_S)

    def _push(self, client: P4RuntimeClient) -> None:
        """A session that adopts nothing starts from a fresh pipeline: the switch then holds
        nothing the controller did not write to it in this session (a switch that was away
        may have missed deletes and ring rewrites)."""
        client.set_pipeline(self.info.p4info, self.program.device_config(), cookie=self.program.cookie())
        self.pipeline_pushes += 1
        log.info("pushed %s to switch %s (%s)", self.program.label, self.name, client.address)

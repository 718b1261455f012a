"""The flow manager alone on a thread: digests in, `flows` entries out, nothing else.

For tools and tests that program the switch once and need no policy, no ring rewrites and
no API (the replay script, the data-plane demo, the Mininet tests with a fixed
configuration). It is the controller's own FlowManager, so entries carry the backend the
switch chose, duplicates are dropped and a full table is handled the same way.
"""

from __future__ import annotations

import queue
import threading

from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import FlowManager
from controller.flow_table import unpack_key
from controller.p4runtime.client import P4RuntimeClient


class FlowInstaller(threading.Thread):
    def __init__(self, client: P4RuntimeClient, tables: DispatcherTables, idle_timeout_ns: int = 0) -> None:
        super().__init__(daemon=True, name="flow-installer")
        self.client = client
        self.manager = FlowManager(
            tables, client, known_backend=lambda backend_id: True, idle_timeout_ns=idle_timeout_ns,
            stats_slots=tables.info.counter("flow_stats").size, table_size=tables.info.table("flows").size)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                arrived, digest_list = self.client.digests.get(timeout=0.05)
            except queue.Empty:
                arrived = None
            with self._lock:
                if arrived is not None:
                    self.client.ack_digest(digest_list)
                    self.manager.on_digest_list(digest_list, arrived)
                self.manager.flush()
        with self._lock:
            self.manager.settle()

    def stop(self) -> None:
        """Write what is pending, then end the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)

    @property
    def installed(self) -> dict[tuple[int, int, int, int, int], int]:
        """Flow key -> backend id of every entry written so far."""
        with self._lock:
            return {unpack_key(key): backend for key, backend, _ in self.manager.table.items()}

"""Synchronous P4Runtime client: arbitration, pipeline, writes, reads and the stream.

The stream channel is read by one background thread that sorts messages into queues
(digests, packet-ins, idle-timeout notifications); everything else is a plain call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from finsy.proto import p4i, p4r, p4r_grpc, rpc_code, rpc_status

T = TypeVar("T")


def queued(messages: queue.Queue[T]) -> Iterator[T]:
    """What a stream queue holds now, without waiting."""
    while True:
        try:
            yield messages.get_nowait()
        except queue.Empty:
            return


def take_digests(client: P4RuntimeClient, max_flows: int) -> Iterator[tuple[float, p4r.DigestList]]:
    """A client's queued digest lists, each acked as it is taken, until they hold `max_flows`
    flows or none is left: (arrival time, list)."""
    taken = 0
    for arrived, digest_list in queued(client.digests):
        client.ack_digest(digest_list)
        yield arrived, digest_list
        taken += len(digest_list.data)
        if taken >= max_flows:
            return


class P4RuntimeError(RuntimeError):
    """The switch refused or could not be reached."""


@dataclass(frozen=True)
class UpdateFailure:
    index: int          # position in the batch
    code: int           # google.rpc.Code
    message: str


class WriteError(P4RuntimeError):
    """Some updates of a write failed; `failures` says which and why."""

    def __init__(self, failures: list[UpdateFailure], total: int) -> None:
        self.failures = failures
        self.total = total
        first = failures[0] if failures else None
        detail = f"; first: update {first.index}: {rpc_code.Code.Name(first.code)} {first.message}" if first else ""
        super().__init__(f"{len(failures)} of {total} updates failed{detail}")


def _write_failures(exc: grpc.RpcError, total: int) -> list[UpdateFailure]:
    """P4Runtime puts one p4.v1.Error per update in the status details."""
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = rpc_status.Status.FromString(value)
            failures = []
            for i, detail in enumerate(status.details):
                err = p4r.Error()
                detail.Unpack(err)
                if err.canonical_code != rpc_code.OK:
                    failures.append(UpdateFailure(i, err.canonical_code, err.message))
            return failures
    return [UpdateFailure(-1, exc.code().value[0], exc.details() or "")]


class PendingWrite:
    """A write in flight (P4RuntimeClient.write_async)."""

    def __init__(self, client: P4RuntimeClient, future: grpc.Future, total: int) -> None:
        self.done_at: float | None = None      # monotonic time the switch answered
        self._client = client
        self._future = future
        self._total = total
        future.add_done_callback(self._mark_done)

    def _mark_done(self, _future: grpc.Future) -> None:
        self.done_at = time.monotonic()
        self._client.activity.set()   # wake a loop waiting on the stream: its write is back

    def result(self) -> None:
        """Wait for the answer; raises WriteError / P4RuntimeError as `write` does."""
        try:
            self._future.result()
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                              grpc.StatusCode.CANCELLED):
                raise P4RuntimeError(f"Write on {self._client.address}: {exc.code().name}: "
                                     f"{exc.details()}") from None
            failures = [UpdateFailure(max(f.index, 0), f.code, f.message)
                        for f in _write_failures(exc, self._total)]
            raise WriteError(failures, self._total) from None


class P4RuntimeClient:
    """One controller's session with one device."""

    def __init__(self, address: str, device_id: int = 0, election_id: int = 1,
                 timeout: float = 10.0) -> None:
        self.address = address
        self.device_id = device_id
        self.election_id = election_id
        self.timeout = timeout
        self.is_primary = False
        # (monotonic arrival time, DigestList): a consumer can tell how long one waited here.
        self.digests: queue.Queue[tuple[float, p4r.DigestList]] = queue.Queue()
        self.packet_ins: queue.Queue[p4r.PacketIn] = queue.Queue()
        self.idle_timeouts: queue.Queue[p4r.IdleTimeoutNotification] = queue.Queue()
        self.stream_errors: queue.Queue[p4r.StreamError] = queue.Queue()
        # Set on every stream message, so one loop can wait on all the queues at once.
        self.activity = threading.Event()
        # Set whenever this client is primary; a backup waits on it to take over.
        self.primary = threading.Event()
        self._arbitration: queue.Queue[p4r.MasterArbitrationUpdate] = queue.Queue()
        self._requests: queue.Queue[p4r.StreamMessageRequest | None] = queue.Queue()
        self._channel: grpc.Channel | None = None
        self._stub: p4r_grpc.P4RuntimeStub | None = None
        self._reader: threading.Thread | None = None
        self.stream_closed = threading.Event()

    # ---- session -------------------------------------------------------------

    def connect(self, arbitrate: bool = True) -> bool:
        """Open the channel and the stream, and take part in arbitration.

        Returns True when this client became primary. Raises P4RuntimeError when the
        switch does not answer within the timeout. With arbitrate=False only the channel
        is opened: enough for reads, which need no election id (a monitor, a test).
        """
        self._channel = grpc.insecure_channel(self.address, options=[
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ])
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            self._channel.close()
            raise P4RuntimeError(f"no P4Runtime server at {self.address} after {self.timeout:.0f} s") from None
        self._stub = p4r_grpc.P4RuntimeStub(self._channel)
        if not arbitrate:
            return False
        responses = self._stub.StreamChannel(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._read_stream, args=(responses,),
                                        name=f"p4rt-stream-{self.address}", daemon=True)
        self._reader.start()
        self._send_arbitration()
        try:
            update = self._arbitration.get(timeout=self.timeout)
        except queue.Empty:
            raise P4RuntimeError(f"{self.address}: no arbitration answer") from None
        self.is_primary = update.status.code == rpc_code.OK
        return self.is_primary

    def _send_arbitration(self) -> None:
        req = p4r.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.high = self.election_id >> 64
        req.arbitration.election_id.low = self.election_id & ((1 << 64) - 1)
        self._requests.put(req)

    def _read_stream(self, responses) -> None:
        try:
            for msg in responses:
                kind = msg.WhichOneof("update")
                if kind == "arbitration":
                    self.is_primary = msg.arbitration.status.code == rpc_code.OK
                    (self.primary.set if self.is_primary else self.primary.clear)()
                    self._arbitration.put(msg.arbitration)
                elif kind == "digest":
                    self.digests.put((time.monotonic(), msg.digest))
                elif kind == "packet":
                    self.packet_ins.put(msg.packet)
                elif kind == "idle_timeout_notification":
                    self.idle_timeouts.put(msg.idle_timeout_notification)
                elif kind == "error":
                    self.stream_errors.put(msg.error)
                self.activity.set()
        except grpc.RpcError:
            pass  # the switch went away or we closed; stream_closed tells
        finally:
            self.is_primary = False
            self.primary.clear()
            self.stream_closed.set()
            self.activity.set()

    def close(self) -> None:
        self._requests.put(None)
        if self._channel is not None:
            self._channel.close()
        if self._reader is not None:
            self._reader.join(timeout=2)

    def __enter__(self) -> P4RuntimeClient:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def _connected_stub(self) -> p4r_grpc.P4RuntimeStub:
        if self._stub is None:
            # A caller's mistake, not the switch's: not a P4RuntimeError, which callers retry.
            raise RuntimeError(f"P4Runtime client for {self.address} used before connect()")
        return self._stub

    def _election(self) -> p4r.Uint128:
        return p4r.Uint128(high=self.election_id >> 64, low=self.election_id & ((1 << 64) - 1))

    def _call(self, what: str, fn, request):
        try:
            return fn(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise P4RuntimeError(f"{what} on {self.address}: {exc.code().name}: {exc.details()}") from None

    # ---- pipeline --------------------------------------------------------------

    def set_pipeline(self, p4info: p4i.P4Info, device_config: bytes, cookie: int = 0) -> None:
        """VERIFY_AND_COMMIT: the switch loads the program and forgets all previous state."""
        req = p4r.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, election_id=self._election(),
            action=p4r.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        req.config.p4info.CopyFrom(p4info)
        req.config.p4_device_config = device_config
        req.config.cookie.cookie = cookie
        self._call("SetForwardingPipelineConfig", self._connected_stub.SetForwardingPipelineConfig, req)

    def set_pipeline_files(self, p4info: p4i.P4Info, bmv2_json: str | Path, cookie: int = 0) -> None:
        self.set_pipeline(p4info, Path(bmv2_json).read_bytes(), cookie)

    def pipeline_cookie(self) -> int | None:
        """The cookie of the loaded pipeline; None when the switch has no pipeline."""
        req = p4r.GetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            response_type=p4r.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        try:
            config = self._connected_stub.GetForwardingPipelineConfig(req, timeout=self.timeout).config
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return None
            raise P4RuntimeError(f"GetForwardingPipelineConfig on {self.address}: "
                                 f"{exc.code().name}: {exc.details()}") from None
        return config.cookie.cookie if config.HasField("cookie") else None

    def get_pipeline(self) -> p4r.ForwardingPipelineConfig:
        req = p4r.GetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            response_type=p4r.GetForwardingPipelineConfigRequest.P4INFO_AND_COOKIE)
        return self._call("GetForwardingPipelineConfig", self._connected_stub.GetForwardingPipelineConfig, req).config

    # ---- writes and reads ----------------------------------------------------

    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None:
        """Send updates in batches. Raises WriteError naming every failed update."""
        failures: list[UpdateFailure] = []
        for start in range(0, len(updates), batch_size):
            batch = updates[start:start + batch_size]
            req = p4r.WriteRequest(device_id=self.device_id, election_id=self._election(),
                                   updates=batch)
            try:
                self._connected_stub.Write(req, timeout=self.timeout)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise P4RuntimeError(f"Write on {self.address}: {exc.code().name}: {exc.details()}") from None
                for f in _write_failures(exc, len(batch)):
                    failures.append(UpdateFailure(start + max(f.index, 0), f.code, f.message))
        if failures:
            raise WriteError(failures, len(updates))

    def write_async(self, updates: Sequence[p4r.Update]) -> PendingWrite:
        """One WriteRequest sent without waiting: the caller prepares its next batch while
        the switch applies this one, and collects the outcome with `result()`."""
        req = p4r.WriteRequest(device_id=self.device_id, election_id=self._election(), updates=updates)
        return PendingWrite(self, self._connected_stub.Write.future(req, timeout=self.timeout), len(updates))

    def read(self, entities: Iterable[p4r.Entity]) -> Iterator[p4r.Entity]:
        req = p4r.ReadRequest(device_id=self.device_id, entities=list(entities))
        try:
            for response in self._connected_stub.Read(req, timeout=self.timeout):
                yield from response.entities
        except grpc.RpcError as exc:
            raise P4RuntimeError(f"Read on {self.address}: {exc.code().name}: {exc.details()}") from None

    # ---- stream --------------------------------------------------------------

    def ack_digest(self, digest: p4r.DigestList) -> None:
        req = p4r.StreamMessageRequest()
        req.digest_ack.digest_id = digest.digest_id
        req.digest_ack.list_id = digest.list_id
        self._requests.put(req)

    def packet_out(self, payload: bytes, metadata: dict[int, bytes]) -> None:
        """metadata: packet_out header field id -> encoded value."""
        req = p4r.StreamMessageRequest()
        req.packet.payload = payload
        for field_id, value in metadata.items():
            req.packet.metadata.add(metadata_id=field_id, value=value)
        self._requests.put(req)

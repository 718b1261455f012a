"""In-order delivery of one direction of a TCP flow, with bounded memory.

Retransmitted bytes are dropped, out-of-order segments are held (at most
`Limits.max_out_of_order` bytes) until the gap before them fills. When the gap does not
fill in that room the stream skips it: the caller is told (`gap`), resets its parser and
the `tcp_gap` error is counted.
"""

from __future__ import annotations

from controller.sessions.model import Limits, ParseStats

_MOD = 1 << 32


def seq_diff(a: int, b: int) -> int:
    """a - b in sequence space (wraps at 2**32)."""
    d = (a - b) % _MOD
    return d - _MOD if d >= _MOD // 2 else d


class TcpReassembler:
    def __init__(self, limits: Limits, stats: ParseStats) -> None:
        self.limits, self.stats = limits, stats
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0

    def feed(self, seq: int, payload: bytes, syn: bool = False) -> tuple[bytes, bool]:
        """The bytes now in order after this segment, and whether a gap was skipped."""
        if syn:
            self.next_seq = (seq + 1) % _MOD
            self.pending.clear()
            self.pending_bytes = 0
            payload = b""             # data on a SYN is not used (TCP Fast Open)
        if not payload:
            return b"", False
        if self.next_seq is None:     # the capture starts mid-flow: start here
            self.next_seq = seq
        d = seq_diff(seq, self.next_seq)
        if d < 0:
            if -d >= len(payload):
                self.stats.note("tcp_retransmission")
                return b"", False
            payload = payload[-d:]
            d = 0
        gap = False
        if d > 0:
            if seq not in self.pending or len(self.pending[seq]) < len(payload):
                self.pending_bytes += len(payload) - len(self.pending.get(seq, b""))
                self.pending[seq] = payload
            if self.pending_bytes <= self.limits.max_out_of_order:
                return b"", False
            self.stats.error("tcp_gap")
            gap = True
            self.next_seq = min(self.pending, key=lambda s: seq_diff(s, self.next_seq or 0))
            out = bytearray()
        else:
            out = bytearray(payload)
            self.next_seq = (self.next_seq + len(payload)) % _MOD
        self._drain(out)
        return bytes(out), gap

    def _drain(self, out: bytearray) -> None:
        assert self.next_seq is not None
        while self.pending:
            s = min(self.pending, key=lambda k: seq_diff(k, self.next_seq or 0))
            d = seq_diff(s, self.next_seq)
            if d > 0:
                return
            data = self.pending.pop(s)
            self.pending_bytes -= len(data)
            if -d < len(data):
                out += data[-d:]
                self.next_seq = (self.next_seq + len(data) + d) % _MOD

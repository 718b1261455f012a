"""capture_query: chunking, the store, tool command lines and outputs, the rebalancing rule
(pure), and the chunked answer against the whole-file answer on generated captures."""

from __future__ import annotations

import argparse
import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
from query_helpers import chunked_lines, whole_file_lines, write_capture

from capture_query.captures import CaptureFormatError, read_records
from capture_query.chunking import FlowPacker, SizePacker, chunk_capture, read_index, record_key
from capture_query.cli import register
from capture_query.engine import node_workers
from capture_query.placement import Rebalancer
from capture_query.rebalance import Move, chunks_to_move, keeps_bouncing, over_threshold, plan_moves
from capture_query.store import Store
from capture_query.tools import Ngrep, OutRecord, Tcpdump, ToolArgumentError, make_query


def _packets(path: Path) -> list:
    return [r for _, r in read_records(path) if r.packet]


def _ingest(tmp_path: Path, files: list[Path], chunk_kb: float = 2, mode: str = "flow", nodes: int = 3) -> Store:
    store = Store.open_or_create(tmp_path / "store", nodes, chunk_kb / 1024, mode)
    assert all(source.error is None for source in store.ingest(files))
    return store


# --- chunking -------------------------------------------------------------------------------

@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
def test_flow_chunks_hold_whole_flows_in_file_order(tmp_path: Path, pcapng: bool) -> None:
    capture = write_capture(tmp_path / ("in.pcapng" if pcapng else "in.pcap"), flows=40, pcapng=pcapng)
    store = _ingest(tmp_path, [capture])
    chunks = store.chunks()
    assert len(chunks) > 3
    assert {c.node for c in chunks} == {"node0", "node1", "node2"}
    assert all(store.chunk_path(c).suffix == (".pcapng" if pcapng else ".pcap") for c in chunks)
    original = _packets(capture)
    home: dict = {}
    seen = 0
    for chunk in chunks:
        records, index = _packets(store.chunk_path(chunk)), read_index(store.chunk_path(chunk))
        assert len(records) == len(index) == chunk.packets
        numbers = [int(n) for n in index["number"]]
        assert numbers == sorted(numbers)                       # file order kept
        for record, number, ts in zip(records, numbers, index["ts"]):
            assert record.raw == original[number - 1].raw      # byte for byte
            assert ts == pytest.approx(original[number - 1].timestamp)
            assert home.setdefault(record_key(record), chunk.id) == chunk.id   # both directions, one chunk
        seen += len(records)
    assert seen == len(original)


def test_size_chunks_are_consecutive_cuts(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "in.pcap", flows=30)
    store = _ingest(tmp_path, [capture], chunk_kb=3, mode="size")
    numbers = [int(n) for c in store.chunks() for n in read_index(store.chunk_path(c))["number"]]
    assert numbers == list(range(1, len(_packets(capture)) + 1))


def test_packers_grow_chunks_to_the_target() -> None:
    flows = FlowPacker(100)
    assert [flows.place(k, 60) for k in ("a", "b", "a", "c", "b", "d")] == [0, 0, 0, 1, 0, 1]
    sizes = SizePacker(100)
    assert [sizes.place(k, 60) for k in ("a", "b", "a", "c")] == [0, 0, 1, 1]


def test_truncated_capture_names_file_and_offset_and_keeps_the_rest(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "in.pcap", flows=20)
    whole = _packets(capture)
    cut = whole[30].offset + 10   # in the middle of the 31st record's header
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(capture.read_bytes()[:cut])
    store = Store.open_or_create(tmp_path / "store", 2, 0.002, "flow")
    [source] = list(store.ingest([broken]))
    assert source.error == f"{broken} at byte {whole[30].offset}: record header cut short: 10 of 16 bytes"
    assert source.packets == 30 == sum(c.packets for c in store.chunks())


def test_ingest_command_names_file_and_offset_exits_1_and_keeps_the_readable_part(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = write_capture(tmp_path / "in.pcap", flows=20)
    whole = _packets(capture)
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(capture.read_bytes()[:whole[40].offset + 20])   # into the 41st record's data
    good = write_capture(tmp_path / "good.pcap", flows=10, seed=3)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["query", "ingest", str(broken), str(good), "--nodes", "2", "--store",
                              str(tmp_path / "store"), "--chunk-mb", "0.002"])
    assert args.handler(args) == 1
    err = capsys.readouterr().err
    assert f"error: {broken} at byte {whole[40].offset}: record cut short" in err
    assert "(the 40 packets before it are kept)" in err
    store = Store.open(tmp_path / "store")
    assert [s.packets for s in store.manifest.sources] == [40, len(_packets(good))]
    assert sum(c.packets for c in store.chunks()) == 40 + len(_packets(good))
    if shutil.which("tcpdump") is not None:     # what was kept answers as the readable part does
        filters = ["-n", "-tt", "tcp or udp"]
        kept = tmp_path / "kept.pcap"
        kept.write_bytes(capture.read_bytes()[:whole[40].offset])
        assert Counter(chunked_lines(store, "tcpdump", filters)) == \
            Counter(whole_file_lines("tcpdump", filters, [kept, good]))


def test_corrupt_length_and_garbage_are_errors_at_their_offset(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "in.pcapng", flows=10, pcapng=True)
    data = bytearray(capture.read_bytes())
    bad = _packets(capture)[5].offset
    data[bad + 4:bad + 8] = (7).to_bytes(4, "little")    # a block length that is no block's
    broken = tmp_path / "broken.pcapng"
    broken.write_bytes(bytes(data))
    result = chunk_capture(broken, 1 << 20, "flow", 0, lambda n: (f"c{n}", tmp_path / f"c{n}.pcapng"))
    assert isinstance(result.error, CaptureFormatError)
    assert (result.error.path, result.error.offset, result.packets) == (broken, bad, 5)
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all")
    result = chunk_capture(garbage, 1 << 20, "flow", 0, lambda n: (f"g{n}", tmp_path / f"g{n}.pcap"))
    assert result.error is not None and result.error.offset == 0 and result.chunks == []


def test_store_keeps_placement_and_moves_and_splits(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "in.pcap", flows=40)
    store = _ingest(tmp_path, [capture], chunk_kb=8, nodes=2)
    chunk = store.chunks()[0]
    store.move(chunk, "node1")
    store.save()
    again = Store.open(store.root)
    assert again.by_id(chunk.id).node == "node1" and again.chunk_path(again.by_id(chunk.id)).exists()
    packets = chunk.packets
    halves = again.split(again.by_id(chunk.id))
    assert len(halves) == 2 and sum(h.packets for h in halves) == packets
    numbers = [int(n) for h in halves for n in read_index(again.chunk_path(h))["number"]]
    assert sorted(numbers) == sorted(set(numbers)) and len(numbers) == packets


def test_ingest_onto_one_node_keeps_a_nodes_files_there(tmp_path: Path) -> None:
    files = [write_capture(tmp_path / f"n{k}.pcap", flows=30, seed=k) for k in range(2)]
    small = [write_capture(tmp_path / f"s{k}.pcap", flows=2, seed=k) for k in range(6)]   # a chunk each
    store = Store.open_or_create(tmp_path / "store", 3, 2 / 1024, "flow")
    assert all(s.error is None for s in store.ingest(files[:1], node="node2"))
    assert all(s.error is None for s in store.ingest(files[1:] + small))      # then round robin again
    on = Counter(c.node for c in store.chunks() if c.source == 0)
    assert list(on) == ["node2"] and on["node2"] >= 3
    assert {c.node for c in store.chunks() if c.source == 1} == {"node0", "node1", "node2"}
    assert Counter(c.node for c in store.chunks() if c.source >= 2) == {"node0": 2, "node1": 2, "node2": 2}
    assert all(store.chunk_path(c).parent.name == c.node for c in store.chunks())
    with pytest.raises(ValueError, match="no node 'probe9'"):
        list(store.ingest(files[:1], node="probe9"))


# --- tools ----------------------------------------------------------------------------------

def test_tool_command_lines_and_refusals() -> None:
    assert make_query("tshark", ["-T", "fields", "-e", "http.host"]).argv(Path("c.pcap")) == \
        ["tshark", "-r", "c.pcap", "-T", "fields", "-e", "frame.number", "-e", "http.host"]
    assert make_query("tcpdump", ["-n", "udp"]).argv(Path("c.pcap"))[:4] == ["tcpdump", "-r", "c.pcap", "--number"]
    assert "-q" in make_query("ngrep", ["GET"]).argv(Path("c.pcap"))
    for tool, args in (("tshark", ["-r", "x"]), ("tcpdump", ["-w", "x"]), ("ngrep", ["-I", "x"])):
        with pytest.raises(ToolArgumentError):
            make_query(tool, args)
    with pytest.raises(ToolArgumentError, match="needs field output"):
        make_query("tshark", ["-Y", "dns"], merge=True)


def test_output_records_are_renumbered_as_on_the_whole_file() -> None:
    ngrep = list(Ngrep().records([], [b"input: c.pcap\n", b"filter: x\n", b"\n", b"T 1.1.1.1:1 -> 2.2.2.2:80 [AP] #3\n",
                                      b"  GET / ...\n", b"\n", b"U 1.1.1.1:5 -> 2.2.2.2:53 #7\n", b"  ...\n"]))
    assert [(r.number, r.banner) for r in ngrep] == [(None, True), (3, False), (7, False)]
    assert ngrep[0].lines == [b"filter: x\n"]
    assert Ngrep().render([], ngrep[1], 120)[1] == b"T 1.1.1.1:1 -> 2.2.2.2:80 [AP] #120\n"
    tcpdump = list(Tcpdump().records([], [b"    1  12:00 IP a > b: x\n", b"    a > b: more\n", b"   12  12:01 IP c\n"]))
    assert [(r.number, r.lines) for r in tcpdump] == [(1, [b"12:00 IP a > b: x\n", b"    a > b: more\n"]),
                                                      (12, [b"12:01 IP c\n"])]
    assert Tcpdump().render(["--number"], OutRecord(1, [b"x\n"]), 42) == [b"   42  x\n"]


# --- rebalancing (pure) ---------------------------------------------------------------------

def test_the_source_count_of_chunks_to_move() -> None:
    assert chunks_to_move(t_slow=10, t_avg=6, t_per_chunk=1) == 4
    assert chunks_to_move(t_slow=10, t_avg=6, t_per_chunk=3) == 2     # ceil(4/3)
    assert chunks_to_move(t_slow=5, t_avg=6, t_per_chunk=1) == 0


def test_over_threshold_is_slowest_first() -> None:
    times = {"a": 10.0, "b": 4.0, "c": 12.0, "d": 6.0}   # mean 8
    assert over_threshold(times, 0.1) == ["c", "a"]
    assert over_threshold(times, 0.3) == ["c"]
    assert over_threshold({"a": 1.0, "b": 1.05}, 0.1) == []


def test_plan_pairs_slowest_with_fastest_and_second_with_second() -> None:
    chunks = {n: [f"{n}{k}" for k in range(10)] for n in "abcd"}
    times = {"a": 20.0, "b": 16.0, "c": 6.0, "d": 2.0}         # mean 11
    moves = plan_moves(times, chunks, 0.1, random.Random(0))
    # First round: a gives ceil((20 - 11) / 2) = 5 to d, b gives ceil((16 - 11) / 1.6) = 4 to c;
    # later rounds (until all are within the threshold) may add more.
    assert [m.target for m in moves if m.source == "a"][:5] == ["d"] * 5
    assert [m.target for m in moves if m.source == "b"][:4] == ["c"] * 4
    assert chunks_to_move(20, 11, 2) == 5 and chunks_to_move(16, 11, 1.6) == 4


def test_plan_converges_within_the_threshold() -> None:
    rng = random.Random(3)
    chunks = {n: [f"{n}{k}" for k in range(40)] for n in ("fast", "half", "quarter")}
    speed = {"fast": 1.0, "half": 2.0, "quarter": 4.0}           # seconds per chunk
    for _ in range(6):                                          # repeated queries, moves applied
        times = {n: speed[n] * len(c) for n, c in chunks.items()}
        for move in plan_moves(times, chunks, 0.1, rng):
            chunks[move.source].remove(move.chunk)
            chunks[move.target].append(move.chunk)
    times = {n: speed[n] * len(c) for n, c in chunks.items()}
    assert max(times.values()) <= 1.1 * sum(times.values()) / 3 + max(speed.values())
    assert sum(len(c) for c in chunks.values()) == 120


def test_balanced_nodes_move_nothing_and_moves_are_real() -> None:
    chunks = {"a": ["a1", "a2"], "b": ["b1", "b2"]}
    assert plan_moves({"a": 2.0, "b": 2.1}, chunks, 0.1, random.Random(0)) == []
    moves = plan_moves({"a": 8.0, "b": 1.0}, chunks, 0.1, random.Random(0))
    assert moves and all(isinstance(m, Move) and m.source == "a" and m.target == "b" for m in moves)


def test_a_chunk_that_keeps_bouncing() -> None:
    assert not keeps_bouncing([], 5)
    assert not keeps_bouncing([1], 5)
    assert keeps_bouncing([3, 4], 5)
    assert not keeps_bouncing([1, 2], 5)          # long ago


def test_a_bouncing_chunk_is_cut_in_two_one_half_moves_and_the_answer_holds(tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (scripts/setup.sh installs it)")
    capture = write_capture(tmp_path / "a.pcap", flows=60, seed=7)
    store = _ingest(tmp_path, [capture], chunk_kb=3, nodes=2)
    store.manifest.queries = 5
    on_slow = [c for c in store.chunks() if c.node == "node0"]
    for chunk in on_slow:
        chunk.moved_in = [3, 4]          # moved after the last two queries: bouncing
    before = {c.id: (c.packets, c.bytes) for c in on_slow}
    done = Rebalancer(store, 0.1, random.Random(0)).apply({"node0": 10.0, "node1": 1.0})
    assert done.splits and len(done.moves) == len(done.splits)      # every chosen chunk was cut
    for old in done.splits:
        first, second = store.by_id(old + "a"), store.by_id(old + "b")
        assert (first.node, second.node) == ("node0", "node1")     # one half stays, one moves
        assert first.packets + second.packets == before[old][0] and min(first.packets, second.packets) > 0
        assert store.chunk_path(first).parent.name == "node0" and store.chunk_path(second).parent.name == "node1"
        assert {"chunk": old + "b", "from": "node0", "to": "node1"} in done.moves
        with pytest.raises(KeyError):
            store.by_id(old)
    store.save()
    again = Store.open(store.root)
    assert sum(c.packets for c in again.chunks()) == len(_packets(capture))
    args = ["-n", "-tt", "tcp or udp"]
    assert chunked_lines(again, "tcpdump", args, merge=True) == whole_file_lines("tcpdump", args, [capture])


def test_a_chunk_moved_only_once_before_or_of_one_flow_just_moves(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "a.pcap", flows=60, seed=7)
    store = _ingest(tmp_path, [capture], chunk_kb=3, nodes=2)
    store.manifest.queries = 5
    for chunk in store.chunks():
        chunk.moved_in = [4]
    done = Rebalancer(store, 0.1, random.Random(0)).apply({"node0": 10.0, "node1": 1.0})
    assert done.moves and not done.splits
    one_flow = [write_capture(tmp_path / f"one{k}.pcap", flows=1, seed=k) for k in range(4)]
    single = _ingest(tmp_path / "single", one_flow, chunk_kb=0.01, nodes=2)     # a chunk per file
    for chunk in single.chunks():
        chunk.moved_in = [3, 4]
    single.manifest.queries = 5
    done = Rebalancer(single, 0.1, random.Random(0)).apply({"node0": 10.0, "node1": 1.0})
    assert done.splits == [] and len(done.moves) == 1 and done.moves[0]["to"] == "node1"
    assert len(single.chunks()) == 4 and single.by_id(done.moves[0]["chunk"]).node == "node1"


def test_nodes_map_to_workers_by_name_else_in_order() -> None:
    assert node_workers(["node0", "node1"], {"node1": "tcp://b", "node0": "tcp://a"}) == \
        {"node0": "tcp://a", "node1": "tcp://b"}
    assert node_workers(["node0", "node1", "node2"], {"1": "tcp://b", "0": "tcp://a"}) == \
        {"node0": "tcp://a", "node1": "tcp://b", "node2": "tcp://a"}


# --- the chunked answer is the whole-file answer (generated captures) ---------------------------

QUERIES = [
    ("tshark", ["-Y", "http.request", "-T", "fields", "-e", "http.host", "-e", "http.request.uri"]),
    ("tcpdump", ["-n", "-tt", "udp port 53 or tcp[tcpflags] & tcp-syn != 0"]),
    ("ngrep", ["-t", "host[0-9]+\\.example"]),
]


@pytest.mark.parametrize(("tool", "args"), QUERIES, ids=[q[0] for q in QUERIES])
def test_chunked_answer_equals_whole_file(tmp_path: Path, tool: str, args: list[str]) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    files = [write_capture(tmp_path / "a.pcap", flows=45, seed=1),
             write_capture(tmp_path / "b.pcapng", flows=30, seed=2, pcapng=True)]
    store = _ingest(tmp_path, files, chunk_kb=3)
    assert len(store.chunks()) >= 6
    whole = whole_file_lines(tool, args, files)
    assert len(whole) >= 20
    assert Counter(chunked_lines(store, tool, args)) == Counter(whole)


@pytest.mark.parametrize(("tool", "args"), QUERIES, ids=[q[0] for q in QUERIES])
def test_merged_answer_is_in_whole_file_order(tmp_path: Path, tool: str, args: list[str]) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    capture = write_capture(tmp_path / "a.pcap", flows=45, seed=4)
    store = _ingest(tmp_path, [capture], chunk_kb=3)
    assert chunked_lines(store, tool, args, merge=True) == whole_file_lines(tool, args, [capture])

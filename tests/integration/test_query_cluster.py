"""capture_query on Dask: the shared captures chunked at 1 MB give the whole-file answer
(tshark with reassembly, a tcpdump filter, an ngrep pattern; as multisets, and in time order
with --merge), a worker killed mid-query changes nothing, a chunk that keeps bouncing between
nodes is cut in two, and an external cluster (`dask scheduler`, `dask worker`) serves the
command line's `--scheduler`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from distributed import Client
from matplotlib.image import imread
from query_helpers import drop_banners, whole_file_lines, write_capture

from capture_query.captures import read_records
from capture_query.engine import connect, worker_names
from capture_query.session import QuerySession
from capture_query.store import Store
from capture_query.tools import Query, make_query
from topo.mininet_support import free_tcp_port

TOOLS = ("tshark", "tcpdump", "ngrep")
CORPUS_QUERIES = [
    ("tshark", ["-Y", "http.request", "-T", "fields", "-e", "http.host"]),
    ("tcpdump", ["-n", "-tt", "udp port 53 or (tcp[tcpflags] & tcp-syn != 0)"]),
    ("ngrep", ["-t", "-i", "host:"]),
]


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup.sh installs them)")


def _corpus() -> list[Path]:
    root = os.environ.get("P4DISPATCH_SHARED_DATA")
    pcaps = Path(root) / "pcaps" if root else Path(__file__).resolve().parents[3] / "shared" / "data" / "pcaps"
    files = sorted(p for p in pcaps.glob("*") if p.suffix in (".pcap", ".pcapng")) if pcaps.is_dir() else []
    if not files:
        pytest.skip(f"no shared captures in {pcaps} (set P4DISPATCH_SHARED_DATA)")
    return files


def _run(store: Store, query: Query, workers: int = 2, merge: bool = False) -> list[bytes]:
    out = io.BytesIO()
    with connect(None, workers) as client:
        report = QuerySession(store, query, client, merge=merge, rebalance=False, verbose=False, out=out,
                              err=io.StringIO()).run()
    assert len(report.results) == len(store.chunks())
    return drop_banners(query.tool, out.getvalue().splitlines(keepends=True))


def _whole(tool: str, args: list[str], files: list[Path]) -> list[bytes]:
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        parts = pool.map(lambda f: whole_file_lines(tool, args, [f]), files)
    return [line for part in parts for line in part]


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[Path]]:
    _need_tools()
    files = _corpus()
    store = Store.open_or_create(tmp_path_factory.mktemp("query") / "store", 2, 1.0, "flow")
    assert [s.error for s in store.ingest(files) if s.error] == []
    return store, files


@pytest.mark.parametrize(("tool", "args"), CORPUS_QUERIES, ids=[q[0] for q in CORPUS_QUERIES])
def test_shared_captures_chunked_give_the_whole_file_lines(corpus_store, tool: str, args: list[str]) -> None:
    store, files = corpus_store
    whole = _whole(tool, args, files)
    assert len(whole) > 50
    assert Counter(_run(store, make_query(tool, args))) == Counter(whole)


def _time_ordered(path: Path) -> bool:
    stamps = [r.timestamp for _, r in read_records(path) if r.packet]
    return all(a <= b for a, b in zip(stamps, stamps[1:]))


@pytest.mark.parametrize(("tool", "args"), CORPUS_QUERIES[1:], ids=[q[0] for q in CORPUS_QUERIES[1:]])
def test_merge_gives_the_whole_files_in_time_order(tmp_path: Path, tool: str, args: list[str]) -> None:
    """Files whose packets are in time order (a merge by time cannot reproduce another order):
    the chunked, merged answer against the same files each taken whole as one chunk."""
    _need_tools()
    files = [f for f in _corpus() if _time_ordered(f)]
    chunked = Store.open_or_create(tmp_path / "chunked", 2, 1.0, "flow")
    whole = Store.open_or_create(tmp_path / "whole", 2, 1 << 20, "flow")   # one chunk per file
    for store in (chunked, whole):
        assert [s.error for s in store.ingest(files) if s.error] == []
    assert len(whole.chunks()) == len(files) < len(chunked.chunks())
    query = make_query(tool, args, merge=True)
    expected = _run(whole, query, merge=True)
    assert len(expected) > 50
    assert _run(chunked, query, merge=True) == expected
    assert Counter(expected) == Counter(_whole(tool, args, files))


def test_a_worker_killed_mid_query_loses_and_doubles_nothing(tmp_path: Path) -> None:
    _need_tools()
    files = [write_capture(tmp_path / "a.pcap", flows=90, seed=5)]
    store = Store.open_or_create(tmp_path / "store", 2, 2 / 1024, "flow")
    list(store.ingest(files))
    assert len(store.chunks()) >= 12
    args = ["-n", "-tt", "tcp or udp"]
    # Each task sleeps first, so the kill lands while chunks are running on both workers.
    query = Query("tcpdump", tuple(args), wrapper=("sh", "-c", 'sleep 0.4; exec "$@"', "sh"))
    out = io.BytesIO()
    with connect(None, 2) as client:
        pids = client.run(os.getpid)
        victim = next(addr for addr, info in client.scheduler_info()["workers"].items() if str(info["name"]) == "1")

        def kill_soon() -> None:
            time.sleep(1.5)
            os.kill(pids[victim], signal.SIGKILL)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        report = QuerySession(store, query, client, rebalance=True, verbose=False, out=out, err=io.StringIO()).run()
        killer.join()
        assert victim not in client.scheduler_info()["workers"]          # it did die
        assert "1" in worker_names(client) or len(worker_names(client)) == 1
    assert sorted(r.chunk_id for r in report.results) == sorted(c.id for c in store.chunks())
    lines = out.getvalue().splitlines(keepends=True)
    assert Counter(lines) == Counter(whole_file_lines("tcpdump", args, files))
    assert len(lines) == len(set(lines))        # -tt: every packet's line is unique: none twice


def test_a_chunk_that_keeps_bouncing_is_split_in_two(tmp_path: Path) -> None:
    """The slow node changes between queries (node0, node1, node0, ...: another job on it), so
    chunks go back and forth; one chosen to move a third time is cut in two flow-complete
    halves, one stays and one moves, and the answer is still the whole file's."""
    _need_tools()
    capture = write_capture(tmp_path / "a.pcap", flows=90, seed=11)
    store = Store.open_or_create(tmp_path / "store", 2, 4 / 1024, "flow")
    list(store.ingest([capture]))
    assert len(store.chunks()) >= 6
    slow = tmp_path / "slow-node"
    # A chunk on the node named in `slow` takes 0.4 s more (its path is .../nodes/NODE/...).
    delay = ("sh", "-c", f'case "$*" in *"/nodes/$(cat {slow})/"*) sleep 0.4;; esac; exec "$@"', "sh")
    args = ["-n", "-tt", "tcp or udp"]
    query = Query("tcpdump", tuple(args), wrapper=delay)
    with connect(None, 2) as client:
        for q in range(4):
            slow.write_text(f"node{q % 2}")
            QuerySession(store, query, client, rebalance=True, verbose=False, out=io.BytesIO(),
                         err=io.StringIO(), seed=q).run()
    history = [json.loads(line) for line in (store.root / "history.jsonl").read_text().splitlines()]
    splits = [(h["query"], old) for h in history for old in h["splits"]]
    assert splits, [h["moves"] for h in history]
    moved_after = {}     # chunk -> the queries after which it moved (their 0-based numbers)
    for h in history:
        for move in h["moves"]:
            moved_after.setdefault(move["chunk"], []).append(h["query"] - 1)
    for query_number, old in splits:
        recent = [q for q in moved_after.get(old, []) if query_number - 1 - 3 < q < query_number - 1]
        assert len(recent) >= 2, (old, moved_after.get(old))    # it had moved after 2 of the last 3
        moved = next(h["moves"] for h in history if h["query"] == query_number)
        assert any(m["chunk"] == old + "b" for m in moved)       # one half moved, under its new id
    again = Store.open(store.root)
    ids = {c.id for c in again.chunks()}
    assert all(old not in ids for _, old in splits)
    assert all(again.chunk_path(c).exists() and again.chunk_path(c).parent.name == c.node for c in again.chunks())
    assert sum(c.packets for c in again.chunks()) == sum(1 for _, r in read_records(capture) if r.packet)
    out = io.BytesIO()
    with connect(None, 2) as client:
        QuerySession(again, make_query("tcpdump", args, merge=True), client, merge=True, rebalance=False,
                     verbose=False, out=out, err=io.StringIO()).run()
    assert out.getvalue().splitlines(keepends=True) == whole_file_lines("tcpdump", args, [capture])


# Captures of the shared corpus with HTTP requests and DNS answers (some 900 lines in all).
EXTERNAL_FILES = ("android.pcap", "instagram.pcap", "WebattackRCE.pcap", "alexa-app.pcapng")
EXTERNAL_QUERY = ["-Y", "http.request || dns.flags.response == 1", "-T", "fields", "-e", "http.host",
                  "-e", "dns.qry.name"]


def _dask(*args: str) -> list[str]:
    """The `dask` command of this environment."""
    return [str(Path(sys.executable).with_name("dask")), *args]


def test_an_external_dask_cluster_started_with_its_own_commands(tmp_path: Path, children) -> None:
    """`dask scheduler` and two `dask worker` processes on loopback, as a user starts them;
    ingest and a tshark query through `--scheduler` from the command line: the whole-file
    answer, every chunk run on the worker named as its node, a progress bar on stderr and the
    per-worker timeline written."""
    _need_tools()
    pcaps = _corpus()[0].parent
    files = [pcaps / name for name in EXTERNAL_FILES]
    port = free_tcp_port()
    address = f"tcp://127.0.0.1:{port}"
    # Work stealing off, as docs/query.md says: chunks then run where they are placed.
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False"}
    log = (tmp_path / "dask.log").open("w")
    children.start(_dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
                   env=env, stdout=log, stderr=subprocess.STDOUT)
    for name in ("node0", "node1"):
        children.start(_dask("worker", address, "--name", name, "--nthreads", "1", "--host", "127.0.0.1",
                             "--no-dashboard", "--memory-limit", "1GiB"),
                       env=env, stdout=log, stderr=subprocess.STDOUT)
    cli = [sys.executable, "-m", "controller", "query"]
    store = tmp_path / "store"
    deadline = time.monotonic() + 90
    while True:     # until both workers have joined (ingest takes the cluster's workers as nodes)
        with Client(address, timeout=30) as client:
            if len(client.scheduler_info()["workers"]) == 2:
                break
        assert time.monotonic() < deadline, (tmp_path / "dask.log").read_text()[-3000:]
        time.sleep(0.5)
    done = subprocess.run([*cli, "ingest", *map(str, files), "--chunk-mb", "0.3", "--store", str(store),
                           "--scheduler", address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Store.open(store).manifest.nodes == ["node0", "node1"]
    timeline = tmp_path / "timeline.png"
    done = subprocess.run([*cli, "tshark", "--store", str(store), "--scheduler", address, "--timeline",
                           str(timeline), "--", *EXTERNAL_QUERY], capture_output=True, timeout=300)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 0, err
    whole = whole_file_lines("tshark", EXTERNAL_QUERY, files)
    assert len(whole) > 500
    assert Counter(done.stdout.splitlines(keepends=True)) == Counter(whole)
    ran = re.findall(r"chunk \S+ node (\S+) worker (\S+) [0-9.]+ s$", err, re.M)   # amid the bar's \r
    assert len(ran) == len(Store.open(store).chunks()) >= 6
    assert all(node == worker for node, worker in ran), ran
    # The progress bar (tqdm, redrawn at most every 0.1 s, so not every count shows; cleared at the end).
    assert re.search(rf"tshark: +\d+%\|.*\| \d+/{len(ran)} \[", err), err[:300]
    image = imread(timeline)
    assert image.shape[0] > 100 and image.shape[1] > 300

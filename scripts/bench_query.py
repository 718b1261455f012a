"""Scaling and rebalancing of capture_query (issue 12), like the source's figure 5.

1. Scaling: one query over a corpus of --copies copies of the shared captures (joined into
   one pcapng with mergecap), on 1, 2 and 4 workers of an embedded Dask cluster.
2. Heterogeneous workers: three workers held to 100 %, 50 % and 25 % of a core (cgroup v1
   cpu quotas, and cpu shares in the same ratio for when the machine is busy; needs root),
   --queries repeated DNS-response queries without and with rebalancing, in turn on the same
   cluster (each store from the same round-robin placement); completion time per query and
   the machine's load when it ended.

Writes results/bench_query/bench.json and prints a summary. A small run:
    .venv/bin/python scripts/bench_query.py --copies 4 --chunk-mb 5 --queries 6
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capture_query.engine import connect  # noqa: E402
from capture_query.session import QuerySession  # noqa: E402
from capture_query.store import Store  # noqa: E402
from capture_query.tools import make_query  # noqa: E402

DNS_QUERY = ["-Y", "dns.flags.response == 1", "-T", "fields", "-e", "dns.qry.name"]
CGROUP = Path("/sys/fs/cgroup/cpu")


def build_corpus(pcaps: Path, work: Path) -> Path:
    """The shared captures joined into one pcapng (mergecap -a keeps every link type)."""
    files = sorted(str(p) for p in pcaps.glob("*") if p.suffix in (".pcap", ".pcapng"))
    joined = work / "corpus.pcapng"
    subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", str(joined), *files], check=True,
                   stderr=subprocess.DEVNULL)
    return joined


def ingest(root: Path, files: Sequence[Path], nodes: int, chunk_mb: float, mode: str) -> Store:
    shutil.rmtree(root, ignore_errors=True)
    store = Store.open_or_create(root, nodes, chunk_mb, mode)
    for source in store.ingest(files):
        if source.error:
            print(f"warning: {source.error}", file=sys.stderr)
    return store


def run_query(store: Store, client, args: Sequence[str], rebalance: bool) -> dict:
    with open(os.devnull, "wb") as out:
        report = QuerySession(store, make_query("tshark", args), client, rebalance=rebalance, verbose=False,
                              out=out, err=io.StringIO(), seed=1).run()
    return {"wall_s": round(report.wall_seconds, 3), "node_s": {n: round(t, 3) for n, t in report.node_seconds.items()},
            "moved": len(report.moves), "split": len(report.splits),
            "load": round(os.getloadavg()[0], 2)}   # the 1-minute load when it ended (cores are shared)


@contextmanager
def cpu_limits(client, percents: Sequence[int]):
    """Each worker (by name order) and what it starts in a cgroup with its share of a core."""
    if not (CGROUP / "cgroup.procs").exists() or os.geteuid() != 0:
        raise SystemExit("heterogeneous run: needs root and cgroup v1 cpu controller at /sys/fs/cgroup/cpu")
    pids = client.run(os.getpid)
    names = {addr: str(info["name"]) for addr, info in client.scheduler_info()["workers"].items()}
    made = []
    try:
        for k, addr in enumerate(sorted(pids, key=lambda a: names[a])):
            group = CGROUP / f"bench_query_w{k}"
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text("100000")
            (group / "cpu.cfs_quota_us").write_text(str(percents[k] * 1000))
            # The quota only caps: on a machine busy with other work every process gets less
            # than 25 % of a core anyway, and the quotas would leave the workers alike. Shares
            # in the same ratio (100 %: a plain process's 1024, the others less) keep them
            # apart under contention, and only ever lower their priority.
            (group / "cpu.shares").write_text(str(max(2, 1024 * percents[k] // 100)))
            (group / "cgroup.procs").write_text(str(pids[addr]))
            made.append(group)
        yield
    finally:
        for group in made:
            for pid in (group / "cgroup.procs").read_text().split():
                (CGROUP / "cgroup.procs").write_text(pid)
            group.rmdir()


def scaling(files: Sequence[Path], work: Path, chunk_mb: float, mode: str, workers: Sequence[int],
            repeats: int) -> list[dict]:
    store = ingest(work / "scaling", files, max(workers), chunk_mb, mode)   # ingest leaves it in the page cache
    size = sum(c.bytes for c in store.chunks())
    rows = []
    for n in workers:
        with connect(None, n) as client:
            runs = [run_query(store, client, DNS_QUERY, rebalance=False) for _ in range(repeats)]
        best = min(runs, key=lambda r: r["wall_s"])
        rows.append({"workers": n, "wall_s": best["wall_s"], "bytes": size, "chunks": len(store.chunks()),
                     "runs_s": [r["wall_s"] for r in runs], "load": [r["load"] for r in runs]})
        print(f"scaling: {n} workers {best['wall_s']:.2f} s ({size / 1e6:.0f} MB, {len(store.chunks())} chunks) "
              f"load {rows[-1]['load']}", flush=True)
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = round(base / row["wall_s"], 2)
        row["efficiency"] = round(row["speedup"] / row["workers"], 2)
    return rows


def heterogeneous(files: Sequence[Path], work: Path, chunk_mb: float, mode: str, queries: int,
                  percents: Sequence[int], threshold: float) -> dict:
    """Two copies of one round-robin placement on the same CPU-limited cluster, queried in
    turn (without rebalancing, then with): a change in the machine's load while the run goes
    on (the cores are shared) falls on both about equally."""
    base = ingest(work / "hetero-base", files, len(percents), chunk_mb, mode)
    out: dict = {"percents": list(percents), "threshold": threshold, "without": [], "with": []}
    stores = {}
    for label in ("without", "with"):
        root = work / f"hetero-{label}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(base.root, root)
        stores[label] = Store.open(root)
    with connect(None, len(percents)) as client, cpu_limits(client, percents):
        for q in range(queries):
            for label in ("without", "with"):
                run = run_query(stores[label], client, DNS_QUERY, rebalance=label == "with")
                out[label].append(run)
                print(f"heterogeneous {label} rebalancing: query {q + 1} {run['wall_s']:.2f} s "
                      f"nodes {run['node_s']} moved {run['moved']} split {run['split']} load {run['load']}",
                      flush=True)
    mean = {label: sum(r["wall_s"] for r in out[label]) / queries for label in ("without", "with")}
    out["mean_wall_s"] = {k: round(v, 3) for k, v in mean.items()}
    out["faster_pct"] = round(100 * (1 - mean["with"] / mean["without"]), 1)
    print(f"heterogeneous: mean per query {mean['without']:.2f} s without, {mean['with']:.2f} s with "
          f"rebalancing: {out['faster_pct']} % faster")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("P4DISPATCH_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--pcaps", type=Path, default=shared / "pcaps")
    parser.add_argument("--copies", type=int, default=20, help="copies of the corpus (20: about 520 MB)")
    parser.add_argument("--chunk-mb", type=float, default=25.0)
    parser.add_argument("--split", choices=("flow", "size"), default="flow")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2, help="scaling runs per worker count (the best counts)")
    parser.add_argument("--percents", type=int, nargs="+", default=[100, 50, 25])
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--skip", choices=("scaling", "heterogeneous"), action="append", default=[])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_query")
    args = parser.parse_args(argv)
    if not args.pcaps.is_dir():
        print(f"no captures at {args.pcaps} (--pcaps DIR or P4DISPATCH_SHARED_DATA)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_query.") as tmp:
        work = Path(tmp)
        corpus = build_corpus(args.pcaps, work)
        files = [corpus] * args.copies
        start = time.perf_counter()
        if "scaling" not in args.skip:
            result["scaling"] = scaling(files, work, args.chunk_mb, args.split, args.workers,
                                         args.repeats)
        if "heterogeneous" not in args.skip:
            result["heterogeneous"] = heterogeneous(files, work, args.chunk_mb, args.split, args.queries,
                                                    args.percents, args.threshold)
        result["seconds"] = round(time.perf_counter() - start, 1)
    (args.out / "bench.json").write_text(json.dumps(result, indent=1))
    print(f"written: {args.out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`query ingest | tshark | tcpdump | ngrep`: the command-line face of capture_query."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from capture_query.chunking import MODES
from capture_query.store import DEFAULT_STORE, Store
from capture_query.tools import TOOLS, ToolArgumentError, make_query


def register(commands: argparse._SubParsersAction) -> None:
    query = commands.add_parser("query", help="chunk captures into a store, and run tshark, tcpdump or "
                                "ngrep on every chunk in parallel (Dask)")
    actions = query.add_subparsers(dest="query_command", required=True, metavar="ACTION")

    ingest = actions.add_parser("ingest", help="cut captures into chunks and place them on the nodes")
    ingest.set_defaults(handler=ingest_command)
    ingest.add_argument("files", nargs="+", type=Path, metavar="FILE", help="pcap or pcapng captures")
    ingest.add_argument("--chunk-mb", type=float, default=25.0, help="chunk size in MB (default 25)")
    ingest.add_argument("--split", choices=MODES, default="flow",
                        help="flow: every flow whole in one chunk (default); size: plain size cuts")
    ingest.add_argument("--nodes", type=int, default=os.cpu_count() or 2,
                        help="nodes to place chunks on, round robin (default: CPU count; a new store only)")
    ingest.add_argument("--node", help="put every chunk of these files on this node (the files a "
                        "capture node wrote), instead of round robin")
    _common(ingest)

    for name in TOOLS:
        tool = actions.add_parser(name, help=f"{name} on every chunk: `query {name} [options] -- ARGS`")
        tool.set_defaults(handler=tool_command, tool=name)
        _common(tool)
        tool.add_argument("--merge", action="store_true", help="merge the outputs in packet time order "
                          "(after every chunk is done) instead of streaming them as chunks finish")
        tool.add_argument("--workers", type=int, help="embedded cluster's workers (default: one per node)")
        tool.add_argument("--threshold", type=float, default=0.1,
                          help="rebalance nodes slower than this fraction above the mean (default 0.1)")
        tool.add_argument("--no-rebalance", action="store_true", help="leave the placement as it is")
        tool.add_argument("--quiet", action="store_true", help="no per-chunk lines on stderr")
        tool.add_argument("--timeline", type=Path, help="write a per-worker timeline plot (PNG) here")
        tool.add_argument("tool_args", nargs=argparse.REMAINDER, help=f"{name}'s own arguments, after --")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"store directory (default {DEFAULT_STORE})")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: an embedded cluster)")


def ingest_command(args: argparse.Namespace) -> int:
    nodes = args.nodes
    if args.scheduler:
        # On a real cluster the nodes are its workers, by name.
        from capture_query.engine import connect, worker_names
        with connect(args.scheduler, 0) as client:
            names = sorted(worker_names(client))
        store = Store.open_or_create(args.store, len(names), args.chunk_mb, args.split)
        if not store.manifest.chunks:
            store.manifest.nodes = names
    else:
        store = Store.open_or_create(args.store, nodes, args.chunk_mb, args.split)
    failed = 0
    before = len(store.manifest.chunks)
    try:
        for source in store.ingest(args.files, args.node):
            if source.error:
                failed += 1
                print(f"error: {source.error} (the {source.packets} packets before it are kept)", file=sys.stderr)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    added = store.manifest.chunks[before:]
    print(f"{len(args.files)} files, {sum(c.packets for c in added)} packets -> {len(added)} chunks "
          f"({store.manifest.mode}, {store.manifest.chunk_mb:g} MB) on {len(store.manifest.nodes)} nodes in "
          f"{store.root}", file=sys.stderr)
    return 1 if failed else 0


def tool_command(args: argparse.Namespace) -> int:
    from capture_query.engine import connect
    from capture_query.session import QuerySession

    tool_args = list(args.tool_args)
    if tool_args[:1] == ["--"]:
        tool_args = tool_args[1:]
    try:
        query = make_query(args.tool, tool_args, merge=args.merge)
        store = Store.open(args.store)
    except (ToolArgumentError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workers = args.workers or len(store.manifest.nodes)
    try:
        with connect(args.scheduler, workers) as client:
            report = QuerySession(store, query, client, merge=args.merge, rebalance=not args.no_rebalance,
                                  threshold=args.threshold, verbose=not args.quiet).run()
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if args.timeline:
        from capture_query.timeline import plot_timeline
        plot_timeline(report.results, args.timeline)
        print(f"timeline: {args.timeline}", file=sys.stderr)
    return 1 if report.failed else 0

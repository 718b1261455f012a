"""Queries over the capture cluster's stored captures: chunking and placement (ingest), tshark,
tcpdump and ngrep run on every chunk where it lives (on Dask), and rebalancing of chunks from
slow to fast nodes. docs/query.md describes the store and the rules."""

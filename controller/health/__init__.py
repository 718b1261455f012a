"""Cluster health: heartbeats and load reports from backend agents, advisors, and the state
machine that decides which backends may take new flows.

  messages.py     the wire formats (shared with agent/: the only controller module it imports)
  intake.py       decode, authenticate, drop unknown hosts and replays; counts every drop
  monitor.py      per-backend health state machine (pure: numbers and times in)
  host_metrics.py the latest load report per host, turned into rates
  advisors.py     TCP connect and HTTP GET probes on a small thread pool
  listener.py     the UDP socket thread that queues datagrams for the serving loop
  config.py       the `[health]` configuration section
  cluster_health.py  the pieces composed behind one poll() for the serving loop

This file imports nothing on purpose: the agent imports controller.health.messages, and
must not pull the controller's runtime in with it.
"""

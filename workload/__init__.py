"""Real traffic for the emulated clusters: an HTTP object server and a Poisson load generator.

Both run inside Mininet hosts (which share this filesystem) as `python -m workload.http_server`
and `python -m workload.load_client`; object sizes follow the simulator's flow-size
distributions (built-in models by default, sim/builtin_workloads.py).
"""

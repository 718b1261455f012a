"""Real traffic for the emulated clusters: an HTTP object server and a Poisson load generator.

Both run inside Mininet hosts (which share this filesystem) as `python -m workload.http_server`
and `python -m workload.load_client`; object sizes follow ../shared/data/flowsize/*.cdf.
"""

"""The backend agent: runs on each server behind the dispatcher and tells the controller, over
UDP, that the server is alive (SARA's heartbeat) and how loaded it is (a load report).

    python -m agent --controller 10.0.0.1:9190 --host-id 11 --service-port 80 --check http
    p4dispatch agent ...                           (the same, from the main command line)

It imports nothing from the controller but the shared wire format
(controller/health/messages.py), so it can be installed on a server with the project and
psutil and nothing else running.

  cli.py           arguments, signals, the `agent` sub-command
  agent.py         the loop: every period, check, sample, send a heartbeat and a report
  host_sampler.py  host metrics with psutil (bytes and packets sent, CPU, load, connections)
  app_check.py     the local application check behind the application-down flag
"""

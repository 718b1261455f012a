"""The ECMP group in front of several switches, changed by the operator's commands
(`[ecmp]` in the configuration): e.g. a script that announces or withdraws the VIP's route
from a switch over BGP, or that rewrites a router's next-hop group.

The serving loop calls these (controller/cluster_app.py, EcmpGroup), so a command has a time
limit; one that fails or overruns is logged and counted, and the controller goes on: the
switches keep being served whatever the ECMP stage does.
"""

from __future__ import annotations

import logging
import subprocess

from controller.config import EcmpCommands

log = logging.getLogger("controller")


class CommandEcmpGroup:
    def __init__(self, commands: EcmpCommands) -> None:
        self.commands = commands
        self.failures = 0

    def add(self, switch: str) -> None:
        self._run(self.commands.add, switch)

    def remove(self, switch: str) -> None:
        self._run(self.commands.remove, switch)

    def _run(self, argv: list[str], switch: str) -> None:
        args = [a.replace("{switch}", switch) for a in argv]
        try:
            subprocess.run(args, check=True, capture_output=True, text=True, timeout=self.commands.timeout_s)
        except subprocess.CalledProcessError as exc:
            self.failures += 1
            log.error("ECMP command %s exited with %d: %s", args, exc.returncode, (exc.stderr or "").strip()[:500])
        except subprocess.TimeoutExpired:
            self.failures += 1
            log.error("ECMP command %s did not finish within %.1f s", args, self.commands.timeout_s)
        except OSError as exc:
            self.failures += 1
            log.error("ECMP command %s could not run: %s", args, exc)

"""How the processes a run starts end with it, and how a run stops on a signal.

Two problems, one module:

* A run killed outright (SIGKILL, an OOM kill, a crashed test runner) gets no chance to clean
  up, and its switch, servers and Mininet hosts would keep running: they are in sessions of
  their own (BMv2 so a terminal's Ctrl-C reaches the run first, Mininet's hosts because
  `mnexec -d` detaches them). `tied()` prefixes a command with `setpriv --pdeathsig KILL`
  (util-linux), so the kernel kills the process when the thread that started it ends, and
  with `env --default-signal=INT,TERM`, so it does not inherit an ignored SIGINT (a background
  job of a non-interactive shell starts with SIGINT ignored, and a child would then shrug off
  the SIGINT that asks it to stop).
* SIGINT and SIGTERM must stop a run the same way: `StopSignals` turns either into `Stopped`
  (a KeyboardInterrupt) in the main thread, once; the run's `finally` and `with` blocks then
  take everything down. A signal that arrives while a clean-up is under way (`teardown()`)
  does not cut it short: it is raised when the clean-up has finished.

The parent-death signal goes to the process when the *thread* that forked it ends, not the
process: start long-lived processes from the main thread (or a thread that outlives them).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


@cache
def _env_resets_signals() -> bool:
    """coreutils' env has --default-signal since 8.31 (Debian 11, Ubuntu 20.04)."""
    env = shutil.which("env")
    if env is None:
        return False
    probe = subprocess.run([env, "--default-signal=INT,TERM", "true"], capture_output=True)
    return probe.returncode == 0


def missing_lifetime_tools() -> str | None:
    """Why processes cannot be tied to the run here, in one line; None when they can."""
    if _setpriv() is None:
        return "setpriv (util-linux) not found: needed so that a killed run leaves no process behind"
    return None


def tied(args: list[str]) -> list[str]:
    """`args` as a command that dies with the thread starting it and has SIGINT and SIGTERM at
    their defaults. Without setpriv (checked by missing_lifetime_tools()) only the latter."""
    prefix: list[str] = []
    setpriv = _setpriv()
    if setpriv is not None:
        prefix += [setpriv, "--pdeathsig", "KILL", "--"]
    if _env_resets_signals():
        prefix += ["env", "--default-signal=INT,TERM"]
    return prefix + list(args)


class Stopped(KeyboardInterrupt):
    """A stop signal ended the run. A KeyboardInterrupt, so that no `except Exception` on the
    way swallows it, and code that already stops cleanly on Ctrl-C stops cleanly on this."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


# Clean-ups under way in the main thread, and a stop signal that arrived during one.
_teardown_depth = 0
_deferred: int | None = None


@contextmanager
def teardown() -> Iterator[None]:
    """A clean-up that a stop signal must not interrupt half-way (processes, then the network,
    then leftover links). A signal caught by StopSignals meanwhile is raised as Stopped when
    the outermost clean-up ends. Only the main thread's clean-ups count: signal handlers run
    there."""
    global _teardown_depth, _deferred
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _teardown_depth += 1
    try:
        yield
    finally:
        _teardown_depth -= 1
        if _teardown_depth == 0 and _deferred is not None:
            signum, _deferred = _deferred, None
            raise Stopped(signum)


class StopSignals:
    """SIGINT and SIGTERM stop the run: `with StopSignals():` around it, in the main thread.

    The handlers are installed whatever the inherited disposition: a run started as a
    background job has SIGINT ignored, and must still stop on it. The first signal raises
    Stopped (or, inside teardown(), once that ends); later ones only call `on_repeat`, so
    that impatience never interrupts the clean-up it is waiting for. The previous handlers
    are back on exit.
    """

    def __init__(self, on_repeat: Callable[[int], None] | None = None) -> None:
        self.received: int | None = None
        self._on_repeat = on_repeat
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        # Python runs signal handlers in the main thread only, and only it may install them:
        # elsewhere (a run started from a worker thread) the caller's handlers stay.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        global _deferred
        if self.received is not None:
            if self._on_repeat is not None:
                self._on_repeat(signum)
            return
        self.received = signum
        if _teardown_depth:
            _deferred = signum
            return
        raise Stopped(signum)


def say(text: str) -> None:
    """One line on stderr, safe inside a signal handler (print() may be mid-write to the same
    stream, and a buffered stream refuses a re-entrant write)."""
    with suppress(OSError):
        os.write(2, (text.rstrip("\n") + "\n").encode())


# ---- process trees: what a child started, to end it all even after the child was killed ----

@dataclass(frozen=True)
class ProcessId:
    """A process as the kernel knows it: pid and start time (a pid alone may be reused)."""
    pid: int
    started: int          # clock ticks after boot (/proc/<pid>/stat field 22)

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        stat = _stat(pid)
        return cls(pid, int(stat[19])) if stat is not None else None

    def alive(self) -> bool:
        """Still this process, and not a zombie waiting for its parent."""
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.started and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (field 3), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()     # the command name may hold spaces and ")"


def descendants(pid: int) -> list[ProcessId]:
    """Every process below `pid` now (children, their children, ...), nearest first.

    Take this before killing a process: once it is dead its children belong to init, and
    nothing links them to it any more.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found: list[ProcessId] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        ident = ProcessId.of(child)
        if ident is not None:
            found.append(ident)
        queue += children.get(child, [])
    return found


def kill_all(processes: Iterable[ProcessId], timeout: float = 5.0) -> list[ProcessId]:
    """SIGKILL each process still alive (the same process: pid and start time), and wait up to
    `timeout` s for them to go. Returns those still there (unkillable: stuck in the kernel)."""
    targets = [p for p in processes if p.alive()]
    for p in targets:
        with suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = [p for p in targets if p.alive()]
        if not targets:
            break
        time.sleep(0.05)
    return targets

"""topo/lifetime.py without root: tied processes die with their parent, SIGINT and SIGTERM
stop a run alike (also when SIGINT was inherited ignored), a clean-up is not cut short."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from topo.lifetime import ProcessId, descendants, kill_all, missing_lifetime_tools, tied

REPO = Path(__file__).resolve().parents[2]

# A run in miniature: a "clean-up" that takes 0.5 s and reports when it is done.
RUN = textwrap.dedent("""
    import sys, time
    from topo.lifetime import StopSignals, Stopped, teardown
    try:
        with StopSignals(on_repeat=lambda s: print("again", s, flush=True)):
            try:
                print("ready", flush=True)
                time.sleep(30)
            finally:
                with teardown():
                    print("cleaning", flush=True)
                    time.sleep(0.5)
                    print("clean", flush=True)
    except Stopped as stop:
        print("stopped", stop.name, flush=True)
        sys.exit(stop.exit_code)
""")


def start_run(*wrapper: str) -> subprocess.Popen:
    proc = subprocess.Popen([*wrapper, sys.executable, "-c", RUN], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen) -> tuple[int, list[str]]:
    try:
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.split("\n")


def test_sigterm_and_sigint_stop_the_run_after_its_clean_up():
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = start_run()
        proc.send_signal(signum)
        returncode, lines = finish(proc)
        assert returncode == code
        assert lines[:3] == ["cleaning", "clean", f"stopped {signum.name}"]


def test_sigint_stops_the_run_even_when_inherited_ignored():
    # As a background job of a non-interactive shell starts it.
    proc = start_run("env", "--ignore-signal=INT")
    proc.send_signal(signal.SIGINT)
    returncode, lines = finish(proc)
    assert returncode == 130 and "stopped SIGINT" in lines


def test_a_second_signal_does_not_cut_the_clean_up_short():
    proc = start_run()
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "cleaning"
    proc.send_signal(signal.SIGINT)
    returncode, lines = finish(proc)
    assert returncode == 143
    assert lines[:3] == [f"again {int(signal.SIGINT)}", "clean", "stopped SIGTERM"]


def test_a_signal_during_a_clean_up_waits_for_its_end():
    script = textwrap.dedent("""
        import os, signal, sys, time
        from topo.lifetime import StopSignals, Stopped, teardown
        try:
            with StopSignals():
                with teardown():
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.2)
                    print("clean-up finished", flush=True)
                print("not reached", flush=True)
        except Stopped as stop:
            sys.exit(stop.exit_code)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=10, cwd=REPO)
    assert done.returncode == 143 and done.stdout == "clean-up finished\n", done


def test_tied_processes_die_with_the_process_that_started_them():
    assert missing_lifetime_tools() is None, "setpriv (util-linux) is part of every Debian install"
    # A parent that starts a tied and an untied grandchild, then is killed outright.
    script = textwrap.dedent("""
        import subprocess, sys, time
        from topo.lifetime import tied
        tied_child = subprocess.Popen(tied(["sleep", "60"]))
        free_child = subprocess.Popen(["sleep", "61"])
        print(tied_child.pid, free_child.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    below = descendants(parent.pid)
    tied_child, free_child = (ProcessId.of(pid) for pid in pids)
    assert tied_child in below and free_child in below
    try:
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while tied_child.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not tied_child.alive(), "the tied child outlived its parent"
        assert free_child.alive(), "an untied child would have (so the test tests something)"
    finally:
        assert kill_all(below) == []
    assert not free_child.alive()


def test_tied_commands_have_sigint_and_sigterm_at_their_defaults():
    # Started with both ignored; the tied command sees them at their defaults again.
    shown = subprocess.run(["env", "--ignore-signal=INT,TERM", *tied(["env", "--list-signal-handling", "true"])],
                           capture_output=True, text=True, timeout=10)
    assert shown.returncode == 0
    assert "INT" not in shown.stderr and "TERM" not in shown.stderr, shown.stderr

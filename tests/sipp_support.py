"""SIPp in the session-affinity tests: whether it is here, a ringing server scenario, and
which calls a caller placed (from its message trace)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

G711_PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def sipp_missing() -> str | None:
    if shutil.which("sipp") is None:
        return "sipp not installed (Debian package sip-tester; scripts/setup.sh installs it)"
    if not G711_PCAP.exists():
        return f"SIPp's {G711_PCAP.name} not found under {G711_PCAP.parent}"
    return None


def ringing_uas_scenario(path: Path, ring_ms: int) -> Path:
    """SIPp's built-in `uas` with `ring_ms` of ringing between 180 and 200 OK. The built-in one
    answers at once, so the caller's RTP would follow its INVITE by a LAN round trip; a call
    is answered after it rings (a person in seconds, an auto-attendant in a few hundred ms),
    and the announcement has that long to reach the switch (docs/sessions.md)."""
    # `sipp -sd` prints the scenario and exits 99 (it is not a run).
    built_in = subprocess.run(["sipp", "-sd", "uas"], capture_output=True, text=True).stdout
    answer = '<send retrans="500">'
    if built_in.count(answer) != 1:
        raise AssertionError("SIPp's built-in uas scenario changed: no single 200 OK send to delay")
    path.write_text(built_in.replace(answer, f'<pause milliseconds="{ring_ms}"/>\n  {answer}'))
    return path


_INVITE = re.compile(r"^INVITE .*?^Via: SIP/2\.0/UDP [^:\s]+:(\d+).*?^m=audio (\d+)", re.M | re.S)


def invites_sent(message_file: Path) -> set[tuple[int, int]]:
    """A caller's calls from its INVITEs (`-trace_msg -message_file`): (SIP port, offered media
    port). With `-t un` each call has its own SIP socket; a later call may reuse a port."""
    calls: set[tuple[int, int]] = set()
    for block in message_file.read_text(errors="replace").split("\n-----------------------------------------------"):
        if "message sent" in block and "\nINVITE " in block:
            found = _INVITE.search(block)
            if found:
                calls.add((int(found.group(1)), int(found.group(2))))
    return calls

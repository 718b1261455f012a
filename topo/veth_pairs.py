"""veth pairs joining the switch to test traffic: switch side `swN`, host side `hostN`.

Every pair is removed on exit, even after a failure.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class VethPairs:
    ports: list[int]
    prefix: str = "fd"          # interface names: fd-sw1 / fd-h1 for port 1
    mtu: int = 9500

    def switch_side(self, port: int) -> str:
        return f"{self.prefix}-sw{port}"

    def host_side(self, port: int) -> str:
        return f"{self.prefix}-h{port}"

    def create(self) -> None:
        self.destroy()
        try:
            for port in self.ports:
                sw, host = self.switch_side(port), self.host_side(port)
                _ip("link", "add", sw, "type", "veth", "peer", "name", host)
                for dev in (sw, host):
                    _ip("link", "set", dev, "mtu", str(self.mtu))
                    _ip("link", "set", dev, "up")
                    # No IPv6 chatter (router solicitations, DAD) on test links.
                    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                                   capture_output=True)
                    # Offloads would hand the switch unsegmented or unchecksummed frames.
                    subprocess.run(["ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off",
                                    "gso", "off", "gro", "off"], capture_output=True)
        except subprocess.CalledProcessError as exc:
            self.destroy()
            raise RuntimeError(f"could not create veth pairs (root needed?): {exc.stderr.strip()}") from None

    def destroy(self) -> None:
        for port in self.ports:
            _ip("link", "del", self.switch_side(port), check=False)

    def __enter__(self) -> VethPairs:
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

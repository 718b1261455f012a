"""The plain Mininet parts of the topologies: interfaces that stay quiet, and a kernel bridge.

Every interface of an emulated cluster is made by the link classes here, which set it up
before it first comes up:
  * no IPv6: link-local addresses would send router solicitations, MLD reports and DAD
    probes into the dispatcher's ports (and into capture nodes' files);
  * checksum and segmentation offload off: a veth hands a raw socket (BMv2) frames whose
    TCP checksum is only a partial sum, BMv2 forwards them unchanged, and the receiving
    kernel drops them as corrupt.
"""

from __future__ import annotations

import subprocess

from mininet.link import Intf, Link, TCIntf
from mininet.node import Switch


class _Quiet:
    def config(self, **params):
        # Runs in the owning node (a host's namespace, or the root one for a switch side),
        # while the new veth end is still down.
        self.cmd(f"sysctl -qw net.ipv6.conf.{self.name}.disable_ipv6=1")
        self.cmd(f"ethtool -K {self.name} tx off rx off tso off gso off gro off >/dev/null 2>&1")
        return super().config(**params)


class QuietIntf(_Quiet, Intf):
    pass


class QuietTCIntf(_Quiet, TCIntf):
    """A quiet interface that can be rate limited (params `bw`, `use_tbf`, ... as TCIntf)."""


class QuietLink(Link):
    def __init__(self, *args, **params) -> None:
        params["intf"] = QuietIntf     # Mininet.addLink passes its own default `intf`
        super().__init__(*args, **params)


class ShapedLink(Link):
    """A quiet link whose ends take tc parameters (`params1={"bw": 10}` shapes end 1 only)."""

    def __init__(self, *args, **params) -> None:
        params["cls1"] = params["cls2"] = QuietTCIntf
        super().__init__(*args, **params)


class KernelBridge(Switch):
    """A Linux bridge made with iproute2 (Mininet's LinuxBridge needs brctl, not installed here).

    It learns MACs like any switch and needs no controller: the return path of a direct-server-
    return cluster, which must not pass the dispatcher.
    """

    def start(self, controllers) -> None:  # noqa: ARG002 - a bridge has no controller
        _ip("link", "del", self.name)
        _ip("link", "add", "name", self.name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{self.name}.disable_ipv6=1"], capture_output=True)
        for intf in self.intfList():
            if intf.name != "lo":
                _ip("link", "set", intf.name, "master", self.name)
                _ip("link", "set", intf.name, "up")
        _ip("link", "set", self.name, "up")

    def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 - Mininet's signature
        _ip("link", "del", self.name)
        super().stop(deleteIntfs)


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)

"""The plain Mininet parts of the topologies: hosts and nodes whose processes die with the run,
interfaces that stay quiet, and a kernel bridge in a namespace of its own.

Every process Mininet starts for a node (the node's shell, and what `host.popen()` runs in
it) goes through `_popen`; the classes here start it through `topo.lifetime.tied()`, so a run
that is killed outright takes its hosts' shells and processes with it, and with the shells the
hosts' network namespaces and every veth in them (see docs/emulation.md).

Every interface of an emulated cluster is made by the link classes here, which set it up
before it first comes up:
  * no IPv6: link-local addresses would send router solicitations, MLD reports and DAD
    probes into the dispatcher's ports (and into capture nodes' files);
  * checksum and segmentation offload off: a veth hands a raw socket (BMv2) frames whose
    TCP checksum is only a partial sum, BMv2 forwards them unchanged, and the receiving
    kernel drops them as corrupt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mininet.link import Intf, Link, TCIntf
from mininet.node import Host, Switch

from topo.lifetime import tied


class TiedToRun:
    """Mixin for Mininet nodes: their processes die with the thread that started them.

    `mnexec` (how Mininet enters a node's namespaces) does not fork unless it starts as a
    process-group leader, which Mininet's Popen never makes it, so the parent-death signal
    set by `setpriv` before it stays on the shell or server it becomes.
    """

    def _popen(self, cmd, **params):
        return super()._popen(tied(list(cmd)), **params)  # type: ignore[misc]  # a Node's, after us in the MRO


class TiedHost(TiedToRun, Host):
    """A Mininet host whose shell and processes end with the run (Mininet(host=TiedHost))."""


if TYPE_CHECKING:
    # _Quiet is mixed into Intf classes and uses their cmd(), name and config(): tell the checker.
    class _IntfMixinBase(Intf):
        pass
else:
    _IntfMixinBase = object


class _Quiet(_IntfMixinBase):
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


class KernelBridge(TiedToRun, Switch):
    """A Linux bridge made with iproute2 (Mininet's LinuxBridge needs brctl, not installed here).

    It learns MACs like any switch and needs no controller: the return path of a direct-server-
    return cluster, which must not pass the dispatcher. It lives in a network namespace of its
    own (its node's), not the root one: a bridge is not a veth end, so in the root namespace it
    would outlive a run that was killed; in its node's namespace it goes with the node's shell.
    """

    def __init__(self, name: str, **params) -> None:
        params["inNamespace"] = True
        super().__init__(name, **params)

    def start(self, controllers) -> None:
        self._ip(f"link add name {self.name} type bridge stp_state 0 forward_delay 0")
        self.cmd(f"sysctl -qw net.ipv6.conf.{self.name}.disable_ipv6=1")
        for intf in self.intfList():
            if intf.name != "lo":
                self._ip(f"link set {intf.name} master {self.name}")
                self._ip(f"link set {intf.name} up")
        self._ip(f"link set {self.name} up")

    def stop(self, deleteIntfs: bool = True) -> None:
        if self.shell is not None:
            self.cmd(f"ip link del {self.name} 2>/dev/null")
        super().stop(deleteIntfs)

    def _ip(self, args: str) -> None:
        """`ip <args>` in the bridge's namespace; any output is its error."""
        output = self.cmd(f"ip {args}").strip()
        if output:
            raise RuntimeError(f"{self.name}: `ip {args}` failed: {output}")

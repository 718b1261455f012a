"""The controller's configuration file (TOML), validated when it is loaded.

A mistake is reported as one ConfigError naming the file, the field (as a path such as
`services[0].backends[1].mac`) and what was expected; nothing half-loaded is returned.
See configs/sample.toml for every field.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from controller.admission_control import AdmissionSettings
from controller.dataplane.constants import IP_PROTO_TCP, IP_PROTO_UDP, MAX_BACKEND_ID, REACTIVE_BACKEND_ID
from controller.dispatch_ring import check_ring_size
from controller.health.config import HealthConfig
from controller.policies import POLICIES, DampingSettings
from controller.policies.nd import Proportions, check_proportions
from controller.sessions.model import Protocol as SignallingProtocol

PROTOCOLS = {"tcp": IP_PROTO_TCP, "udp": IP_PROTO_UDP}
MAX_SWITCH_PORT = 510  # bit<9>, less the CPU port range
DSR_VISIBLE_LOAD_RATIO = 66 / (2 * 1448)   # one ACK per two full segments


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


def _ip(value: str) -> str:
    ipaddress.ip_address(value)  # raises ValueError with a clear message
    return value


def _ipv4(value: str) -> str:
    ipaddress.IPv4Address(value)
    return value


def _mac(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", value):
        raise ValueError("expected a MAC address like 02:00:00:00:00:01")
    return value.lower()


def _policy(value: str) -> str:
    if value not in POLICIES:
        raise ValueError(f"expected one of {', '.join(sorted(POLICIES))}")
    return value


def _proportions(value: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return check_proportions(value)


IpAddress = Annotated[str, AfterValidator(_ip)]
Ipv4Address = Annotated[str, AfterValidator(_ipv4)]
MacAddress = Annotated[str, AfterValidator(_mac)]
SwitchPort = Annotated[int, Field(ge=0, le=MAX_SWITCH_PORT)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backend(Strict):
    name: str = Field(min_length=1)
    id: int = Field(ge=1, le=MAX_BACKEND_ID, description="backend id in the switch's `backends` table "
                    f"({REACTIVE_BACKEND_ID} is the reactive mode's punt pseudo-backend)")
    port: SwitchPort
    mac: MacAddress
    address: IpAddress | None = None       # for advisors and IP-in-IP
    capacity_mbps: float = Field(default=1000.0, gt=0, description="service rate, Mbit/s")
    weight: float = Field(default=1.0, ge=0)
    # Established connections the server serves well at once: SA2C's "connections" load
    # component (connections / max_connections) is the backlog, which keeps growing in an
    # overload where the bytes sent stop at capacity. None: the component is unknown here.
    max_connections: int | None = Field(default=None, gt=0, description="established connections it serves well")

    @property
    def capacity(self) -> float:
        """Bytes/s, the unit the counters and estimators use."""
        return self.capacity_mbps * 125_000


class NdSettings(Strict):
    """The nd policy's manager (controller/policies/nd.py); changeable at run time by the API."""
    proportions: Annotated[tuple[float, float, float, float], AfterValidator(_proportions)] = (0.3, 0.2, 0.3, 0.2)
    smoothing: float = Field(default=0.5, gt=0, le=1, description="new = old + smoothing * (target - old)")
    sensitivity: float = Field(default=0.05, ge=0, description="rewrite only past this share of weight moved")
    host_limit: float | None = Field(default=None, gt=0, description="host utilisation over which a server "
                                     "is quiesced (None: no limit)")
    cooldown_s: float = Field(default=10.0, ge=0, description="at or below the limit this long before it returns")

    def arguments(self) -> dict[str, float | Proportions | None]:
        """NetworkDispatcher's keyword arguments."""
        return {"proportions": self.proportions, "smoothing": self.smoothing, "sensitivity": self.sensitivity,
                "host_limit": self.host_limit, "cooldown_s": self.cooldown_s}


class Damping(Strict):
    """How fb_est's weights are damped (controller/policies/damping.py, docs/policies.md
    "Herding"): averaged over the time `flows` new flows take to arrive (at most
    `max_seconds`), with `floor` x that time / max_seconds of new flows spread by capacity.
    flows = 0: no damping."""
    flows: float = Field(default=DampingSettings.flows, ge=0, allow_inf_nan=False,
                         description="new flows to average the policy's target over (0: no damping)")
    max_seconds: float = Field(default=DampingSettings.max_seconds, gt=0, allow_inf_nan=False,
                               description="longest averaging time, s")
    floor: float = Field(default=DampingSettings.floor, ge=0, le=1,
                         description="share of new flows spread by capacity at the longest averaging")

    def settings(self) -> DampingSettings:
        return DampingSettings(self.flows, self.max_seconds, self.floor)


SignallingPorts = Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(max_length=16)]


class SessionInspection(Strict):
    """Which signalling of a service the controller reads (docs/sessions.md): the ports of
    each protocol. The switch clones these ports' packets to the controller, which learns
    the flows they announce and sends them to the signalling flow's backend. SIP is read
    over UDP and TCP, RTSP and FTP over TCP. An empty list: that protocol is not read."""
    sip: SignallingPorts = []
    rtsp: SignallingPorts = []
    ftp: SignallingPorts = []
    # An announced entry that no new flow uses for its announcement's start time (SDP offer
    # 180 s, answer 60 s, RTSP the session timeout, FTP 30 s) expires; at most this long.
    start_within_max_s: float = Field(default=180.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _distinct(self) -> SessionInspection:
        ports = [*self.sip, *self.rtsp, *self.ftp]
        repeated = sorted({p for p in ports if ports.count(p) > 1})
        if repeated:
            raise ValueError(f"a port is read as one protocol; repeated: {repeated}")
        if not ports:
            raise ValueError("name the ports of at least one protocol (sip, rtsp, ftp)")
        return self

    def ports(self) -> dict[SignallingProtocol, list[int]]:
        """protocol -> ports, for controller.sessions.SessionTracker."""
        named: tuple[tuple[SignallingProtocol, list[int]], ...] = (("sip", self.sip), ("rtsp", self.rtsp),
                                                                   ("ftp", self.ftp))
        return {name: list(ports) for name, ports in named if ports}

    def clone_keys(self) -> list[tuple[int, int]]:
        """(IP protocol, port) of every `signalling` table entry these need."""
        keys = [(IP_PROTO_UDP, p) for p in self.sip] + [(IP_PROTO_TCP, p) for p in self.sip]
        keys += [(IP_PROTO_TCP, p) for p in (*self.rtsp, *self.ftp)]
        return keys


def _port_range(value: object) -> object:
    """16000, "16000" or "16000-16999" -> (low, high); anything else is left to the type check."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, str):
        low, dash, high = value.partition("-")
        try:
            return (int(low), int(high if dash else low))
        except ValueError:
            raise ValueError(f"{value!r} is not a port or a range of ports such as \"16000-16999\"") from None
    return value


def _ordered(ports: tuple[int, int]) -> tuple[int, int]:
    if ports[0] > ports[1]:
        raise ValueError(f"the range {ports[0]}-{ports[1]} ends before it starts")
    return ports


PortRange = Annotated[tuple[Annotated[int, Field(ge=1, le=65535)], Annotated[int, Field(ge=1, le=65535)]],
                      BeforeValidator(_port_range), AfterValidator(_ordered)]


class Service(Strict):
    name: str = Field(min_length=1)
    id: int = Field(ge=1, le=65535)
    mode: Literal["vip", "capture"]
    vip: IpAddress | None = None
    protocol: Literal["tcp", "udp"] = "tcp"
    port: int | None = Field(default=None, ge=1, le=65535)
    tap_ports: list[SwitchPort] = []
    policy: Annotated[str, AfterValidator(_policy)] = "round_robin"
    # ring: the switch decides (the product); reactive: the first packet of every flow goes
    # to the controller, which decides and sends it back (only to measure against).
    dispatch: Literal["ring", "reactive"] = "ring"
    # When and how much the ring is rewritten (controller/service_ring.py): nothing is written
    # while every backend is within ring_threshold of its target share (hysteresis), and one
    # write moves at most ring_max_change of the slots; a backend that may take no new flows
    # loses its slots at once, whatever both say.
    ring_threshold: float = Field(default=0.02, ge=0, le=1,
                                  description="hysteresis: rewrite the ring only when some backend's "
                                  "share is this far (a share of the ring) from its target")
    ring_max_change: float = Field(default=0.05, gt=0, le=1,
                                   description="at most this share of the ring's slots change per write")
    ring_size: Annotated[int, AfterValidator(check_ring_size)] = 1024
    damping: Damping = Damping()
    forwarding: Literal["dsr", "ipip", "capture"] = "dsr"
    tunnel_source: Ipv4Address | None = None   # IP-in-IP outer source
    tunnel_mac: MacAddress | None = None       # IP-in-IP outer source MAC
    truncate_bytes: int = Field(default=0, ge=0)
    # The share of a backend's traffic the switch sees, to put its counters and the
    # backends' capacities in one unit. Capture: everything (1). DSR and IP-in-IP: only the
    # clients' side, mostly ACKs of what the server sends: about 66 bytes per two 1448-byte
    # segments, 0.023. Unset: that default for the forwarding method.
    visible_load_ratio: float | None = Field(default=None, gt=0, le=1)
    # nd's manager settings; only for `policy = "nd"` (its defaults otherwise).
    nd: NdSettings | None = None
    # SA2C admission control for this service; None: off, the switch admits everything.
    admission: AdmissionSettings | None = None
    # Signalling read for session affinity (issue 13); None: this service's is not read.
    sessions: SessionInspection | None = None
    # A VIP service's other ports that its sessions announce flows to (RTP media, FTP
    # passive data, FTP's port 20), e.g. ["16000-16999", 20]: flows to them are this
    # service's, sent to their session's backend (or by the ring when none announced them).
    session_ports: list[PortRange] = Field(default=[], max_length=16)
    # flow: each connection is hashed onto the ring by its 5-tuple. client (VIP services): by
    # the client's address alone, so all of a client's connections go to one backend while
    # the ring stands (LVS's persistence): FTP's data connections follow their control
    # connection from the first packet, with no controller in the path. Coarser balance.
    affinity: Literal["flow", "client"] = "flow"
    backends: list[Backend] = Field(min_length=1)

    @model_validator(mode="after")
    def _mode_fields(self) -> Service:
        if self.mode == "vip":
            if self.vip is None or self.port is None:
                raise ValueError("a vip service needs `vip` and `port`")
            if self.forwarding == "capture":
                raise ValueError("a vip service forwards by `dsr` or `ipip`, not `capture`")
        else:
            if not self.tap_ports:
                raise ValueError("a capture service needs `tap_ports`")
            if self.forwarding != "capture":
                raise ValueError("a capture service forwards by `capture`")
        if self.dispatch == "reactive" and self.mode != "vip":
            raise ValueError("reactive dispatch is for vip services (a punted capture packet "
                             "would lose its tap port)")
        if self.nd is not None and self.policy != "nd":
            raise ValueError(f"`nd` settings are for policy \"nd\", and this service's policy is {self.policy!r}")
        if self.affinity == "client" and self.mode != "vip":
            raise ValueError("`affinity = \"client\"` is for vip services (a capture service's flows "
                             "are keyed by both ends alike)")
        if self.session_ports and (self.mode != "vip" or self.sessions is None):
            raise ValueError("`session_ports` are for a vip service with `sessions` (a capture "
                             "service takes every port of its tap)")
        if self.sessions is not None and self.dispatch == "reactive":
            raise ValueError("`sessions` need ring dispatch (a reactive service decides every first "
                             "packet in the controller)")
        if self.forwarding == "ipip":
            if self.tunnel_source is None or self.tunnel_mac is None:
                raise ValueError("ipip forwarding needs `tunnel_source` and `tunnel_mac`")
            missing = [b.name for b in self.backends if b.address is None or ":" in b.address]
            if missing:
                raise ValueError(f"ipip forwarding needs an IPv4 `address` on backends {missing}")
        return self

    @property
    def protocol_number(self) -> int:
        return PROTOCOLS[self.protocol]

    @property
    def load_visibility(self) -> float:
        if self.visible_load_ratio is not None:
            return self.visible_load_ratio
        return 1.0 if self.forwarding == "capture" else DSR_VISIBLE_LOAD_RATIO


class Switch(Strict):
    grpc_address: str = "127.0.0.1:9559"
    # Several switches: how logs and the status name this one (default: its gRPC address).
    name: str | None = Field(default=None, min_length=1)
    device_id: int = Field(default=0, ge=0)
    # The highest election id among connected controllers is primary; run backups lower.
    election_id: int = Field(default=1, ge=1)
    program: str = "dispatcher"        # build/<program>.json and .p4info.txtpb
    # The kind of switch (controller/p4runtime/targets.py): BMv2, or Tofino 1 / 2 through
    # bf_switchd's P4Runtime server with build/tna/<target>/ from bf-p4c.
    target: Literal["bmv2", "tofino", "tofino2"] = "bmv2"


class EcmpCommands(Strict):
    """How the controller changes the ECMP group in front of several switches
    (docs/multiswitch.md rules 6-9): a command to put a switch in and one to take it out,
    each an argument list in which "{switch}" becomes the switch's name (e.g. a script that
    announces or withdraws the VIP's route from that switch over BGP). Left out, the
    controller changes no ECMP group: something else must follow the switches' health."""
    add: list[str] = Field(min_length=1)
    remove: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0)


MIN_TOKEN_LENGTH = 16


def is_loopback(address: str) -> bool:
    """Whether listening on `address` keeps the port on this machine ("" and 0.0.0.0 do not)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False       # a host name: it may resolve to anything


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the API token file {path}: {exc.strerror}") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the API token in {path} must be at least {MIN_TOKEN_LENGTH} characters")
    return token


class Api(Strict):
    """The controller's HTTP endpoint: /metrics for Prometheus, /api/... for the CLI.

    Anyone who reaches it can change the cluster (POST /api/...), so it listens on loopback
    unless told otherwise, and elsewhere only with a token: every request must then carry
    `Authorization: Bearer <token>` (a token configured on loopback is required there too).
    """
    address: str = "127.0.0.1"
    port: int = Field(default=9180, ge=0, le=65535)
    token: str | None = Field(default=None, min_length=MIN_TOKEN_LENGTH)
    token_file: Path | None = None

    @model_validator(mode="after")
    def _token(self) -> Api:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give `token` or `token_file`, not both")
        if self.token_file is not None:
            read_token(self.token_file)
        if not is_loopback(self.address) and self.token is None and self.token_file is None:
            raise ValueError(f"listening on {self.address!r} needs `token` or `token_file`: anyone who "
                             "reaches the API can change the cluster")
        return self

    def bearer_token(self) -> str | None:
        """The token requests must carry (read from token_file now), or None: no check."""
        if self.token_file is not None:
            return read_token(self.token_file)
        return self.token


class Visibility(Strict):
    """Learning each backend's switch-counted / served bytes from its agent's reports
    (controller/estimators/visibility.py); `visible_load_ratio` is the fallback."""
    smoothing: float = Field(default=0.2, gt=0, le=1)
    min_served_bytes: float = Field(default=256e3, gt=0, description="a window closes once the server sent this")
    min_samples: int = Field(default=3, ge=1, description="windows before the learned ratio replaces the fallback")


class Timers(Strict):
    cache_timeout_ms: int = Field(default=1000, gt=0)
    digest_retry_ms: int = Field(default=500, gt=0)
    flow_idle_timeout_s: float = Field(default=10.0, gt=0)
    poll_interval_ms: int = Field(default=100, gt=0)


class Config(Strict):
    switch: Switch = Switch()
    # Several dispatchers behind ECMP, one controller for all (docs/multiswitch.md): given as
    # `[[switches]]`, in place of `[switch]`. Empty: the one `[switch]`, as always.
    switches: list[Switch] = []
    ecmp: EcmpCommands | None = None     # several switches: the ECMP group's commands
    timers: Timers = Timers()
    api: Api = Api()
    health: HealthConfig = HealthConfig()
    visibility: Visibility = Visibility()
    services: list[Service] = Field(min_length=1)

    @property
    def dispatchers(self) -> list[Switch]:
        """Every switch this controller drives: the `[[switches]]`, or the one `[switch]`."""
        return list(self.switches) if self.switches else [self.switch]

    @property
    def several_switches(self) -> bool:
        return bool(self.switches)

    @model_validator(mode="after")
    def _several_switches(self) -> Config:
        if not self.switches:
            if self.ecmp is not None:
                raise ValueError("`[ecmp]` is for several switches (`[[switches]]`)")
            return self
        if "switch" in self.model_fields_set:
            raise ValueError("give `[switch]` (one dispatcher) or `[[switches]]` (several), not both")
        if len(self.switches) < 2:
            raise ValueError("`[[switches]]` is for several dispatchers; one is `[switch]`")
        names = [s.name for s in self.switches if s.name is not None]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"each switch needs a name of its own; repeated: {twice}")
        places = [(s.grpc_address, s.device_id) for s in self.switches]
        repeated = sorted({p for p in places if places.count(p) > 1})
        if repeated:
            raise ValueError(f"each switch needs a gRPC address and device id of its own; repeated: {repeated}")
        # One P4Info for all: the controller builds every entry once and writes it to each.
        if len({(s.program, s.target) for s in self.switches}) > 1:
            raise ValueError("every switch of `[[switches]]` runs the same program on the same target")
        # What the several-switch controller does not do yet (docs/multiswitch.md, "left").
        for service in self.services:
            unsupported = [what for what, used in (("reactive dispatch", service.dispatch == "reactive"),
                                                   ("`admission`", service.admission is not None)) if used]
            if unsupported:
                raise ValueError(f"service {service.name}: {', '.join(unsupported)} not built for several "
                                 "switches yet")
        return self

    @model_validator(mode="after")
    def _unique(self) -> Config:
        for what, values in (("service id", [s.id for s in self.services]),
                             ("backend id", [b.id for s in self.services for b in s.backends]),
                             ("tap port", [p for s in self.services for p in s.tap_ports])):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"each {what} must be used once; repeated: {duplicates}")
        # The switch clones by (protocol, port), whichever service the packet is for; two
        # services reading one port as different protocols could not both be right.
        read_as: dict[int, SignallingProtocol] = {}
        for service in self.services:
            for protocol, ports in (service.sessions.ports() if service.sessions else {}).items():
                for port in ports:
                    if read_as.setdefault(port, protocol) != protocol:
                        raise ValueError(f"signalling port {port} is read as {read_as[port]} by one "
                                         f"service and as {protocol} by another")
        # A VIP's session port ranges decide a flow's service: two that overlap could not both.
        ranges = sorted((s.vip, s.protocol, low, high, s.name) for s in self.services for low, high in s.session_ports)
        for a, b in zip(ranges, ranges[1:]):
            if a[:2] == b[:2] and b[2] <= a[3]:
                raise ValueError(f"session_ports {a[2]}-{a[3]} ({a[4]}) and {b[2]}-{b[3]} ({b[4]}) overlap "
                                 f"on {a[1]} {a[0]}")
        self.health.plan(self.services)     # agents' and advisors' names exist (ValueError says which)
        return self


def _where(loc: tuple) -> str:
    """('services', 0, 'backends', 1, 'mac') -> services[0].backends[1].mac"""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in ("function-after",) and not str(part).startswith(("function-", "literal[")):
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{path}: {_where(err['loc'])}: {message} (got {err.get('input')!r})"
                            if err["type"] not in ("missing",) else f"{path}: {_where(err['loc'])}: required")
        raise ConfigError("\n".join(problems)) from None

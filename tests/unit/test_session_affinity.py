"""Session affinity in the controller (issue 13, items 2-4): announcements as `announced_flows`
entries, the session table, SessionControl from packet-ins to writes, and the configuration."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from controller_fakes import digest_list
from finsy.proto import p4r, rpc_code
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from signalling_frames import MAC_A, MAC_B, ftp_frames

from controller.config import Config, ConfigError, load_config
from controller.dataplane.constants import DigestFlag
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.dataplane.flow_key import flow_key
from controller.flow_manager import FlowManager
from controller.p4runtime import P4InfoIndex
from controller.p4runtime.client import UpdateFailure, WriteError
from controller.session_control import BACKEND_WAIT_S, SessionControl
from controller.sessions.announced import (
    PRIORITY_BOTH_ENDS,
    PRIORITY_ONE_END,
    PRIORITY_WITH_PEER,
    BadMetadata,
    entries_for,
    entry_from_switch,
    session_key,
)
from controller.sessions.model import Announcement, SessionEnd
from controller.sessions.table import SessionTable
from controller.switch_setup import service_updates, signalling_updates
from topo.toolchain import BUILD_DIR

P4INFO = BUILD_DIR / "dispatcher.p4info.txtpb"
needs_p4info = pytest.mark.skipif(not P4INFO.exists(), reason="build/dispatcher.p4info.txtpb not built (p4c missing)")

CLIENT, SERVER = "192.0.2.10", "198.51.100.20"
SIGNALLING = (CLIENT, SERVER, 17, 5062, 5060)


def offer(port: int = 4000, count: int = 2, peer: str | None = None, session: str = "call-1") -> Announcement:
    return Announcement("sip", SIGNALLING, session, CLIENT, port, "udp", "initiator", "sdp-offer", peer,
                        port_count=count, media="audio", start_within_s=180.0)


def key(src: str, dst: str, sport: int, dport: int, protocol: int = 17) -> tuple[int, int, int, int, int]:
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=src, dst=dst) / (UDP(sport=sport, dport=dport) if protocol == 17
                                                   else TCP(sport=sport, dport=dport)))
    found = flow_key(frame)
    assert found is not None
    return found


def load_config_text(text: str) -> Config:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sessions.toml"
        path.write_text(text)
        return load_config(path)


# ---- announcements as entries ---------------------------------------------------------------

def test_an_sdp_offer_covers_its_ports_in_both_directions_and_nothing_else():
    entries = entries_for(offer(), backend_id=11)
    assert len(entries) == 4                     # RTP and RTCP, each as destination and as source
    assert {e.backend_id for e in entries} == {11}
    assert {e.match.priority for e in entries} == {PRIORITY_ONE_END}

    def covered(k: tuple) -> bool:
        return any(e.match.covers(k) for e in entries)

    assert covered(key(SERVER, CLIENT, 30000, 4000))          # media to the announced end
    assert covered(key(CLIENT, SERVER, 4001, 30001))          # RTCP from it (symmetric RTP)
    assert covered(key("203.0.113.9", CLIENT, 1234, 4000))    # an offer says nothing about the sender
    assert not covered(key(SERVER, CLIENT, 30000, 4002))      # another port
    assert not covered(key(SERVER, CLIENT, 30000, 4000, protocol=6))   # another transport
    assert not covered(key(SERVER, "192.0.2.11", 30000, 4000))          # another address


def test_a_known_peer_is_matched_and_wins_priority():
    entries = entries_for(offer(count=1, peer=SERVER), backend_id=12)
    assert {e.match.priority for e in entries} == {PRIORITY_WITH_PEER}
    assert any(e.match.covers(key(SERVER, CLIENT, 30000, 4000)) for e in entries)
    assert not any(e.match.covers(key("203.0.113.9", CLIENT, 30000, 4000)) for e in entries)


def test_an_answer_paired_with_its_offer_covers_that_flow_only_and_wins():
    """A media server answering every call from one port: each call's answer entry names the
    call's own offer port too, so no two calls' entries cover one flow."""
    answer = Announcement("sip", SIGNALLING, "call-1", SERVER, 16000, "udp", "responder", "sdp-answer", CLIENT,
                          port_count=2, peer_port=4000)
    entries = entries_for(answer, backend_id=12)
    assert len(entries) == 4 and {e.match.priority for e in entries} == {PRIORITY_BOTH_ENDS}
    assert PRIORITY_BOTH_ENDS > PRIORITY_WITH_PEER
    covers = lambda k: any(e.match.covers(k) for e in entries)  # noqa: E731
    assert covers(key(CLIENT, SERVER, 4000, 16000)) and covers(key(SERVER, CLIENT, 16000, 4000))
    assert covers(key(CLIENT, SERVER, 4001, 16001))                     # RTCP with RTCP
    assert not covers(key(CLIENT, SERVER, 4100, 16000))                 # another call's media
    assert not covers(key(CLIENT, SERVER, 4001, 16000))


def test_capture_keys_are_covered_whichever_end_sorts_first():
    # flow_key(symmetric=True) puts the lower (address, port) first: for one peer the announced
    # end comes first, for the other second; one of the two entries matches each.
    entries = entries_for(offer(count=1), backend_id=10)
    for other in ("10.0.0.1", "223.0.0.1"):
        frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src=other, dst=CLIENT) / UDP(sport=5555, dport=4000))
        sorted_key = flow_key(frame, symmetric=True)
        assert sorted_key is not None
        assert sum(e.match.covers(sorted_key) for e in entries) == 1


def test_metadata_round_trips_and_long_ids_are_digested():
    long_id = "x" * 500 + "@host"
    entry = entries_for(offer(session=long_id), backend_id=11)[0]
    back = entry_from_switch(entry.match, 11, entry.metadata())
    assert back == entry
    assert back.group.session == session_key(long_id) != long_id
    assert len(entry.metadata()) < 400
    with pytest.raises(BadMetadata, match="unreadable metadata"):
        entry_from_switch(entry.match, 11, b"not json")
    with pytest.raises(BadMetadata):
        entry_from_switch(entry.match, 11, b'{"v": 99}')


# ---- the session table -------------------------------------------------------------------------

def test_session_table_dedupes_fills_ends_and_expires():
    table = SessionTable(capacity=6)
    first = table.announce(entries_for(offer(), 11), now=0.0).write
    assert len(first) == 4 and len(table) == 4
    assert table.announce(entries_for(offer(), 11), now=1.0).write == []    # retransmitted INVITE
    assert table.counts.reannounced == 4
    answer = Announcement("sip", SIGNALLING, "call-1", SERVER, 6000, "udp", "responder", "sdp-answer", None,
                          port_count=2)
    assert len(table.announce(entries_for(answer, 11), now=1.0).write) == 2  # room for two more only
    assert table.counts.table_full == 2
    assert table.by_state() == {"announced": 1, "started": 0}
    assert table.hit(key(SERVER, CLIENT, 6000, 4000)) is not None
    assert table.by_state() == {"announced": 0, "started": 1}
    gone = table.expired(first[0].match)
    assert gone == first[0] and table.counts.expired == 1
    assert table.expired(first[0].match) is None                           # a repeated notification
    ended = table.end(SessionEnd("sip", SIGNALLING, "call-1", "bye"))
    assert len(ended) == 5 and len(table) == 0 and not table.sessions
    assert table.counts.ended == 1


def test_rtsp_teardown_also_ends_what_setup_announced_before_the_session_id():
    sig = (CLIENT, SERVER, 6, 40000, 554)
    table = SessionTable(capacity=100)
    setup = Announcement("rtsp", sig, "", CLIENT, 5000, "udp", "initiator", "client_port", SERVER, port_count=2)
    reply = Announcement("rtsp", sig, "ABC", SERVER, 7000, "udp", "responder", "server_port", CLIENT, port_count=2)
    other = Announcement("rtsp", sig, "XYZ", SERVER, 7100, "udp", "responder", "server_port", CLIENT)
    for a in (setup, reply, other):
        table.announce(entries_for(a, 10), now=0.0)
    assert len(table.end(SessionEnd("rtsp", sig, "ABC", "teardown"))) == 8
    assert len(table) == 2                                  # session XYZ stays
    assert len(table.end(SessionEnd("rtsp", sig, "", "close"))) == 2


def test_an_end_two_sessions_on_different_backends_announce_decides_neither():
    """A media server answering every call from one port (SIPp's uas): its answer's entry would
    send each call's media to whichever call announced first. Withdrawn, so each call's own
    port decides its media; a session on the same backend shares the entry harmlessly."""
    table = SessionTable(capacity=100)

    def call(n: int, backend: int, now: float):
        sig = (CLIENT, SERVER, 17, 5070 + 2 * n, 5060)
        own = Announcement("sip", sig, f"call-{n}", CLIENT, 20000 + 100 * n, "udp", "initiator", "sdp-offer",
                           SERVER, start_within_s=60.0)
        shared = Announcement("sip", sig, f"call-{n}", SERVER, 16000, "udp", "responder", "sdp-answer", CLIENT,
                              start_within_s=60.0)
        return table.announce(entries_for(own, backend), now), table.announce(entries_for(shared, backend), now)

    (_, shared0), (_, shared1) = call(0, 10, 0.0), call(1, 10, 0.1)
    assert len(shared0.write) == 2 and shared1.write == [] and table.counts.reannounced == 2
    _, shared2 = call(2, 11, 0.2)
    assert shared2.write == [] and shared2.withdraw == shared0.write and table.counts.contested == 4
    media = key(CLIENT, SERVER, 20200, 16000)
    entry = table.covering(media)
    assert entry is not None and entry.backend_id == 11 and entry.group.session == "call-2"
    assert table.covering(key(SERVER, CLIENT, 16000, 20000)).group.session == "call-0"
    _, shared3 = call(3, 10, 30.0)                  # still contested: not written again
    assert shared3.write == [] and shared3.withdraw == []
    _, later = call(4, 12, 91.0)                    # every contesting session's start time is over
    assert len(later.write) == 2


# ---- SessionControl: packet-ins to writes ----------------------------------------------------

class FakeSwitch:
    """Answers writes per update as P4Runtime does, for `flows` and `announced_flows`."""

    def __init__(self, tables: DispatcherTables, announced_capacity: int = 100) -> None:
        self.tables = tables
        self.flows: dict[tuple, int] = {}
        self.announced: dict = {}
        self.capacity = announced_capacity

    def write(self, updates, batch_size: int = 1000) -> None:
        failures = []
        for i, update in enumerate(updates):
            entry = update.entity.table_entry
            if self.tables.is_announced_flow(entry):
                match = self.tables.announced_match_of(entry)
                if update.type == p4r.Update.DELETE:
                    if self.announced.pop(match, None) is None:
                        failures.append(UpdateFailure(i, rpc_code.NOT_FOUND, "no such entry"))
                elif len(self.announced) >= self.capacity:
                    failures.append(UpdateFailure(i, rpc_code.RESOURCE_EXHAUSTED, "full"))
                else:
                    self.announced[match] = entry
            elif update.type == p4r.Update.INSERT:
                self.flows[self.tables.flow_key_of(entry)] = entry.action.action.params[0].value[-1]
        if failures:
            raise WriteError(failures, len(updates))

    def write_async(self, updates):
        self.write(updates)
        return _Done()

    def read(self, entities):
        for entry in self.announced.values():
            entity = p4r.Entity()
            entity.table_entry.CopyFrom(entry)
            yield entity


class _Done:
    done_at = 0.0

    def result(self) -> None:
        return None


CAPTURE_CONFIG = """
[[services]]
name = "tap"
id = 1
mode = "capture"
tap_ports = [1]
forwarding = "capture"
sessions = { ftp = [21], sip = [5060] }
backends = [{ name = "n0", id = 10, port = 2, mac = "02:00:00:00:00:10" },
            { name = "n1", id = 11, port = 3, mac = "02:00:00:00:00:11" }]
"""


@pytest.fixture
def control():
    if not P4INFO.exists():
        pytest.skip("build/dispatcher.p4info.txtpb not built (p4c missing)")
    tables = DispatcherTables(P4InfoIndex.load(P4INFO))
    config = load_config_text(CAPTURE_CONFIG)
    switch = FakeSwitch(tables)
    flows = FlowManager(tables, switch, known_backend={10, 11}.__contains__, idle_timeout_ns=10**10,
                        stats_slots=100, table_size=100)
    return SessionControl(config, tables, flows, capacity=100), flows, switch


def sorted_key(frame: bytes) -> tuple[int, int, int, int, int]:
    """The frame's key as a capture service has it (both directions alike)."""
    found = flow_key(frame, symmetric=True)
    assert found is not None
    return found


def confirm(flows: FlowManager, k: tuple, backend: int, flags: int = 0) -> None:
    src, dst, protocol, sport, dport = k
    flows.on_digest_list(digest_list([{"src_addr": src, "dst_addr": dst, "protocol": protocol,
                                       "src_port": sport, "dst_port": dport, "service_id": 1,
                                       "backend_id": backend, "flags": flags}]), 0.0)
    flows.settle()


def announce_pasv(control_parts, pasv_port: int, backend: int) -> list[bytes]:
    """The control connection confirmed on `backend`, then its frames up to the 227 reply
    read and written; returns all its frames (frames[5:] close the session)."""
    sessions, flows, switch = control_parts
    frames = ftp_frames(CLIENT, SERVER, pasv_port=pasv_port)
    confirm(flows, sorted_key(frames[0]), backend=backend)
    for frame in frames[:5]:
        sessions.on_packet_in(1, frame, now=1.0)
    sessions.flush(switch, now=1.0)
    return frames


def test_pasv_reply_installs_the_data_flow_on_the_control_flows_backend_and_close_removes_it(control):
    sessions, flows, switch = control
    frames = announce_pasv(control, pasv_port=50123, backend=11)
    assert len(switch.announced) == 2
    assert {e.backend_id for e in sessions.table} == {11}
    data = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=SERVER) / TCP(sport=41000, dport=50123)
    data_key = sorted_key(bytes(data))
    assert any(m.covers(data_key) for m in switch.announced)
    # The data flow's digest says its backend came from the announcement: a hit.
    confirm(flows, data_key, backend=11, flags=DigestFlag.DIGEST_FLAG_ANNOUNCED)
    assert sessions.table.counts.hits == 1 and sessions.table.by_state()["started"] == 1
    for frame in frames[5:]:                   # QUIT, 221, FIN: the control connection closes
        sessions.on_packet_in(1, frame, now=2.0)
    sessions.flush(switch, now=2.0)
    assert switch.announced == {} and len(sessions.table) == 0
    assert sessions.table.counts.ended == 1
    assert data_key in switch.flows, "the started flow keeps its exact entry"


def test_a_contested_entry_is_deleted_from_the_switch_or_never_written(control):
    """Two FTP sessions from one client on different backends name the same passive port
    (a server reusing it): the written entry is deleted; announced within one flush, neither
    is written."""
    sessions, flows, switch = control

    def session(client_port: int, backend: int, now: float) -> None:
        frames = ftp_frames(CLIENT, SERVER, pasv_port=50300, client_port=client_port)
        confirm(flows, sorted_key(frames[0]), backend=backend)
        for frame in frames[:5]:
            sessions.on_packet_in(1, frame, now=now)

    session(40001, backend=10, now=1.0)
    sessions.flush(switch, now=1.0)
    assert len(switch.announced) == 2
    session(40002, backend=11, now=1.1)
    sessions.flush(switch, now=1.1)
    assert switch.announced == {} and len(sessions.table) == 0 and sessions.table.counts.contested == 4
    assert sessions.table.counts.entries_written == 2

    session(40003, backend=10, now=500.0)       # long after: the port is no longer contested
    session(40004, backend=11, now=500.0)
    sessions.flush(switch, now=500.0)
    assert switch.announced == {} and sessions.table.counts.entries_written == 2, "an insert met its delete"


VIP_FTP_CONFIG = """
[[services]]
name = "ftp"
id = 1
mode = "vip"
vip = "198.51.100.20"
port = 21
sessions = { ftp = [21] }
session_ports = ["40000-40999", "50000-50099"]
backends = [{ name = "s0", id = 10, port = 2, mac = "02:00:00:00:00:10" },
            { name = "s1", id = 11, port = 3, mac = "02:00:00:00:00:11" }]
"""


def test_an_ftp_control_connection_to_a_vip_sends_the_clients_connections_to_its_server():
    """DSR: the switch never sees the 227. From the control connection's SYN, the client's
    connections to the VIP (any port) go to the control connection's server, until it closes;
    other clients' do not, and the close removes the entry."""
    if not P4INFO.exists():
        pytest.skip("build/dispatcher.p4info.txtpb not built (p4c missing)")
    tables = DispatcherTables(P4InfoIndex.load(P4INFO))
    switch = FakeSwitch(tables)
    flows = FlowManager(tables, switch, known_backend={10, 11}.__contains__, idle_timeout_ns=10**10,
                        stats_slots=100, table_size=100)
    sessions = SessionControl(load_config_text(VIP_FTP_CONFIG), tables, flows, capacity=100)
    frames = ftp_frames(CLIENT, SERVER, pasv_port=50007)
    sessions.on_packet_in(0, frames[0], backend_id=11, now=1.0)       # the SYN, dispatched to 11
    sessions.flush(switch, now=1.0)
    assert [e.kind for e in sessions.table] == ["control"] and len(switch.announced) == 1
    entry = sessions.table.covering(key(CLIENT, SERVER, 41000, 50007, protocol=6))
    assert entry is not None and entry.backend_id == 11
    assert sessions.table.covering(key("192.0.2.99", SERVER, 41000, 50007, protocol=6)) is None
    assert sessions.table.covering(key(SERVER, CLIENT, 50007, 41000, protocol=6)) is None
    sessions.table.installed(flow_key(frames[0]))     # the control connection itself: not a miss
    assert sessions.table.counts.missed == 0
    sessions.table.installed(key(CLIENT, SERVER, 41000, 50007, protocol=6))
    assert sessions.table.counts.missed == 1
    for frame in frames[1:]:                     # ... PASV, 227, QUIT, 221, the client's FIN
        sessions.on_packet_in(0, frame, now=2.0)
    sessions.flush(switch, now=2.0)
    assert switch.announced == {} and sessions.table.counts.ended == 1


def test_an_announcement_waits_for_its_signalling_flows_digest_then_gives_up(control):
    sessions, flows, switch = control
    frames = ftp_frames(CLIENT, SERVER, pasv_port=50200)
    for frame in frames[:5]:
        sessions.on_packet_in(1, frame, now=1.0)
    sessions.flush(switch, now=1.0)
    assert switch.announced == {} and sessions.waiting == 1
    confirm(flows, sorted_key(frames[0]), backend=10)
    sessions.flush(switch, now=1.5)
    assert len(switch.announced) == 2 and {e.backend_id for e in sessions.table} == {10}
    # Another announcement whose signalling flow never gets a digest is dropped, counted.
    other = ftp_frames(CLIENT, SERVER, pasv_port=50300, client_port=40001)
    for frame in other[:5]:
        sessions.on_packet_in(1, frame, now=2.0)
    sessions.flush(switch, now=2.0 + BACKEND_WAIT_S + 0.1)
    assert sessions.waiting == 0 and sessions.table.counts.no_backend == 1


def test_malformed_signalling_is_counted_and_installs_nothing(control):
    sessions, flows, switch = control
    sip = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=SERVER) / UDP(sport=5062, dport=5060)
    confirm(flows, sorted_key(bytes(sip)), backend=10)
    bad = [b"INVITE sip:bob@x SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0", b"\xff\xfe" * 300,
           b"INVITE sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Type: application/sdp\r\n"
           b"Content-Length: 30\r\n\r\nv=0\r\nc=IN IP4 999.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\n"]
    for payload in bad:
        sessions.on_packet_in(1, bytes(sip / payload), now=1.0)
    sessions.on_packet_in(7, bytes(sip / b"INVITE"), now=1.0)           # not a tap port of the service
    sessions.flush(switch, now=1.0)
    assert switch.announced == {}
    assert sum(sessions.parse_stats().errors.values()) >= 3
    assert sessions.signalling.not_inspected == 1


def test_take_over_adopts_the_switchs_entries_as_sessions(control):
    sessions, flows, switch = control
    frames = announce_pasv(control, pasv_port=50400, backend=11)
    before = {(e.group, e.match, e.backend_id) for e in sessions.table}
    fresh = SessionControl(load_config_text(CAPTURE_CONFIG), sessions.tables, flows, capacity=100)
    fresh.adopt(switch)
    assert {(e.group, e.match, e.backend_id) for e in fresh.table} == before
    # The adopted table ends the session when the control connection closes.
    for frame in frames[5:]:
        fresh.on_packet_in(1, frame, now=2.0)
    fresh.flush(switch, now=2.0)
    assert switch.announced == {}


def test_idle_expiry_deletes_the_entry(control):
    sessions, flows, switch = control
    announce_pasv(control, pasv_port=50500, backend=10)
    note = p4r.IdleTimeoutNotification()
    for entry in list(switch.announced.values()):
        note.table_entry.append(entry)
    sessions.on_idle_timeout(note)
    flows.on_idle_timeout(note)               # the flow manager ignores another table's entries
    flows.settle()
    sessions.flush(switch, now=2.0)
    assert switch.announced == {} and sessions.table.counts.expired == 2
    assert flows.stats.deleted == 0


# ---- configuration ------------------------------------------------------------------------------

def test_sessions_configuration_is_checked():
    with pytest.raises(ConfigError, match="repeated: \\[21\\]"):
        load_config_text(CAPTURE_CONFIG.replace("sip = [5060]", "sip = [21]"))
    with pytest.raises(ConfigError, match="at least one protocol"):
        load_config_text(CAPTURE_CONFIG.replace("{ ftp = [21], sip = [5060] }", "{}"))
    with pytest.raises(ConfigError, match="sessions"):
        load_config_text(CAPTURE_CONFIG.replace("sessions = { ftp = [21], sip = [5060] }",
                                                "sessions = { ftp = [0] }"))


SIP_VIP_CONFIG = """
[[services]]
name = "sip"
id = 2
mode = "vip"
vip = "10.0.0.100"
protocol = "udp"
port = 5060
sessions = { sip = [5060] }
session_ports = ["16000-16999", 20, "30000"]
backends = [{ name = "s0", id = 20, port = 2, mac = "02:00:00:00:00:20" }]
"""


def test_session_ports_are_checked():
    config = load_config_text(SIP_VIP_CONFIG)
    assert config.services[0].session_ports == [(16000, 16999), (20, 20), (30000, 30000)]
    for bad, says in (('["16999-16000"]', "ends before it starts"), ('["rtp"]', "not a port or a range"),
                      ("[70000]", "less than or equal to 65535")):
        with pytest.raises(ConfigError, match=says):
            load_config_text(SIP_VIP_CONFIG.replace('["16000-16999", 20, "30000"]', bad))
    with pytest.raises(ConfigError, match="for a vip service with `sessions`"):
        load_config_text(SIP_VIP_CONFIG.replace("sessions = { sip = [5060] }\n", ""))
    second = SIP_VIP_CONFIG.replace('name = "sip"', 'name = "sip2"').replace("id = 2", "id = 3").replace(
        "port = 5060", "port = 5062").replace("sip = [5060]", "sip = [5062]").replace(
        '["16000-16999", 20, "30000"]', '["16900-17100"]').replace('"s0", id = 20', '"s1", id = 21')
    with pytest.raises(ConfigError, match="16000-16999 \\(sip\\) and 16900-17100 \\(sip2\\) overlap"):
        load_config_text(SIP_VIP_CONFIG + second)


@needs_p4info
def test_session_ports_are_written_as_ranges_of_the_service():
    tables = DispatcherTables(P4InfoIndex.load(P4INFO))
    service = load_config_text(SIP_VIP_CONFIG).services[0]
    ranges_id = tables.info.table("service_port_ranges").preamble.id
    written = [u.entity.table_entry for u in service_updates(tables, service, ring_base=0)
               if u.entity.table_entry.table_id == ranges_id]
    ports = sorted((int.from_bytes(e.match[-1].range.low, "big"), int.from_bytes(e.match[-1].range.high, "big"))
                   for e in written)
    assert ports == [(20, 20), (16000, 16999), (30000, 30000)]
    assert all(e.priority > 0 and e.action.action.params[0].value == b"\x02" for e in written)


@needs_p4info
def test_signalling_entries_follow_the_configuration():
    tables = DispatcherTables(P4InfoIndex.load(P4INFO))
    config: Config = load_config_text(CAPTURE_CONFIG)
    updates = signalling_updates(tables, config)
    # SIP on UDP and TCP, FTP on TCP; each as source and as destination port.
    assert len(updates) == 2 * 3

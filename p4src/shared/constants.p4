// Constants shared by every target build of the flow dispatcher.
// The controller's copy is controller/dataplane/constants.py. The serializable enums
// (packet-in reasons, admission levels, drop reasons) reach the controller in P4Info, and
// tests/test_p4_program.py checks the Python enums against it; the plain constants are
// checked against this file by tests/test_dataplane_constants.py.
#ifndef FLOW_DISPATCHER_CONSTANTS_P4
#define FLOW_DISPATCHER_CONSTANTS_P4

// ---- Protocol numbers ------------------------------------------------------
const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_IPV6 = 0x86DD;
const bit<16> ETHERTYPE_VLAN = 0x8100;

const bit<8> IP_PROTO_IPV4_IN_IP = 4;    // RFC 2003
const bit<8> IP_PROTO_TCP = 6;
const bit<8> IP_PROTO_UDP = 17;
const bit<8> IP_PROTO_IPV6_IN_IP = 41;   // RFC 4213, IPv6 inner over an IPv4 tunnel
const bit<8> IPV6_NH_FRAGMENT = 44;

const bit<8> TCP_FLAG_FIN = 0x01;
const bit<8> TCP_FLAG_SYN = 0x02;
const bit<8> TCP_FLAG_RST = 0x04;
const bit<8> TCP_FLAG_ACK = 0x10;

// IPv4 addresses live in 128-bit flow keys as IPv4-mapped IPv6 (::ffff:a.b.c.d),
// so one `services` and one `flows` table serve both address families.
const bit<96> IPV4_MAPPED_PREFIX = 0xffff;

// Outer IPv4 header written by IP-in-IP encapsulation.
const bit<8> IPIP_OUTER_TTL = 64;
const bit<16> IPV4_MIN_HEADER_BYTES = 20;
const bit<16> IPV6_HEADER_BYTES = 40;

// ---- Ports and packet I/O ----------------------------------------------------
// simple_switch_grpc is started with --cpu-port 255.
const bit<9> CPU_PORT = 255;
const bit<32> CPU_CLONE_SESSION_ID = 100;  // clone session: replica to CPU_PORT
const bit<8> CLONE_FIELD_LIST_CPU = 1;     // @field_list index preserved on clones

// Why a packet goes to the controller (the packet-in header's `reason`).
enum bit<8> PacketInReason {
    NONE = 0,
    SIGNALLING = 1,    // a clone of a signalling packet (SIP, RTSP, FTP, ...)
    REACTIVE = 2,      // reactive mode: a new flow's packet, undecided
    DROPPED = 3        // a copy of a dropped packet (drop_copies), its reason in drop_reason
}

// standard_metadata.instance_type on BMv2 for an ingress-to-egress clone.
const bit<32> PKT_INSTANCE_TYPE_INGRESS_CLONE = 1;
const bit<32> PKT_INSTANCE_TYPE_REPLICATION = 5;

// ---- Service modes -----------------------------------------------------------
const bit<8> SERVICE_MODE_NONE = 0;     // not a service: plain L2 forwarding
const bit<8> SERVICE_MODE_VIP = 1;      // clients -> VIP; per-connection key
const bit<8> SERVICE_MODE_CAPTURE = 2;  // tap port; symmetric key, both directions

// ---- Where a packet's backend came from (meta.flow_state) --------------------
const bit<8> FLOW_STATE_NONE = 0;
const bit<8> FLOW_STATE_INSTALLED = 1;  // hit in the `flows` table
const bit<8> FLOW_STATE_CACHED = 2;     // a cache way holds this flow: awaits its entry
const bit<8> FLOW_STATE_NEW = 3;        // no state: a new flow, given a free way
const bit<8> FLOW_STATE_COLLISION = 4;  // every way of its set held by another live flow
const bit<8> FLOW_STATE_STATELESS = 5;  // non-IP capture traffic: ring only, never cached

// ---- Admission levels (SARA SA2C), mildest first ------------------------------
enum bit<8> AdmissionLevel {
    ADMIT_ALL = 0,
    DROP_NEW_PROB = 1,          // drop new flows with probability p
    ESTABLISHED_ONLY = 2,       // drop every new flow
    DEGRADE_ESTABLISHED = 3,    // no new flows; established dropped with probability p
    REJECT_ALL = 4
}

// Admission drop probability p is drop_prob / 65536 (16-bit fixed point).

// ---- Drop reasons: index into the `drops` counter ----------------------------
enum bit<8> DropReason {
    NONE = 0,
    PARSER_TRUNCATED = 1,       // a header ran past the end of the packet
    PARSER_OTHER = 2,           // any other parser error
    IPV4_BAD_VERSION = 3,
    IPV4_BAD_IHL = 4,           // IHL < 5
    IPV4_BAD_TOTAL_LEN = 5,     // total length shorter than its own header
    IPV4_BAD_CHECKSUM = 6,      // not on a tap port: see EVENT_BAD_CHECKSUM_CAPTURED
    IP_TRUNCATED = 7,           // packet shorter than the IP length says
    IPV6_BAD_VERSION = 8,
    TCP_BAD_OFFSET = 9,         // TCP data offset < 5
    UDP_BAD_LENGTH = 10,        // UDP length < 8
    VIP_PORT_UNCONFIGURED = 11, // VIP traffic to a port with no service
    VIP_FRAGMENT = 12,          // IP fragment addressed to a VIP
    ADMISSION_NEW = 13,         // SA2C refused a new flow
    ADMISSION_ESTABLISHED = 14, // SA2C degraded an established flow
    NO_BACKEND = 15,            // empty ring slot or unknown backend
    L2_MISS = 16                // no L2 entry and no flood group
}
const bit<32> DROP_REASON_COUNT = 32;

// ---- Dispatch events: index into the `dispatch_events` counter ---------------
// Indices 1-5 count the path each service packet took and equal its FLOW_STATE_*.
const bit<8> EVENT_FLOW_TABLE_HIT = 1;   // FLOW_STATE_INSTALLED
const bit<8> EVENT_CACHE_HIT = 2;        // FLOW_STATE_CACHED
const bit<8> EVENT_NEW_FLOW = 3;         // FLOW_STATE_NEW
const bit<8> EVENT_CACHE_COLLISION = 4;  // FLOW_STATE_COLLISION: the set was full, flow stateless
const bit<8> EVENT_STATELESS = 5;        // FLOW_STATE_STATELESS
const bit<8> EVENT_DIGEST = 6;           // digests sent, repeats included
const bit<8> EVENT_DIGEST_RETRY = 7;     // of which repeats
const bit<8> EVENT_BAD_CHECKSUM_CAPTURED = 8;  // wrong IPv4 checksum, sent to a capture node anyway
const bit<8> EVENT_GENERATION_HELD = 9;     // a stateless decision kept a ring entry's older backend
const bit<8> EVENT_GENERATION_APPLIED = 10; // a ring entry took a new generation for stateless flows
const bit<8> EVENT_ENTRY_ACTIVATED = 11;    // a `flows` entry's first hit agreed with the flow's state
const bit<8> EVENT_ENTRY_STALE = 12;        // ... did not (an earlier flow's entry): not used, digested
const bit<8> EVENT_ANNOUNCED_HIT = 13;      // a new flow's first packet took an announced flow's backend
const bit<8> EVENT_ANNOUNCED_UNUSED = 14;   // matched announced_flows but decided by the ring (set full, or ring entry held)
const bit<8> EVENT_ENTRY_EXPIRED = 15;      // an activated entry silent for the idle timeout: its flow ended, not used
const bit<32> EVENT_COUNT = 16;

// ---- Flags carried in the new-flow digest ------------------------------------
const bit<8> DIGEST_FLAG_RETRY = 0x01;     // repeat: the entry had not appeared in time
const bit<8> DIGEST_FLAG_COLLISION = 0x02; // flow is not cached; its backend came from the ring
const bit<8> DIGEST_FLAG_RTT_VALID = 0x04; // rtt_us is a real SYN -> ACK sample
const bit<8> DIGEST_FLAG_SYMMETRIC = 0x08; // capture mode: key is the sorted 5-tuple
const bit<8> DIGEST_FLAG_STALE_ENTRY = 0x10; // the key's entry names another backend: rewrite it
const bit<8> DIGEST_FLAG_ANNOUNCED = 0x20;   // the flow's backend came from announced_flows (a session's)
const bit<8> DIGEST_FLAG_ACTIVATED = 0x40;   // this packet activated the key's entry (its id asked for it)

// A `flows` entry whose id has this bit sends one digest flagged DIGEST_FLAG_ACTIVATED when
// it is activated: several switches replicate an entry only once its home took it over
// (docs/multiswitch.md). Ids count up from 1 and a single switch's never carry it.
const bit<48> ENTRY_ID_REPORT_ACTIVATION = 0x800000000000;

// The digest's cache_slot for a flow that has no cache way (stateless).
const bit<32> NO_CACHE_SLOT = 0xFFFFFFFF;

#endif

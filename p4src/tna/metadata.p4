// Per-packet metadata of the TNA program, and the headers that carry it from ingress to
// egress (bridged), to the CPU (mirror copies) and back into ingress (resubmit).

// ---- Target numbers -----------------------------------------------------------
// The CPU port: Tofino 1's PCIe port on pipe 0 is device port 64 (the Tofino model's
// CPU port too); Tofino 2's is 0. Override with -DTNA_CPU_PORT_NUMBER=... The controller
// takes the same number from controller/p4runtime/targets.py.
#ifndef TNA_CPU_PORT_NUMBER
#if __TARGET_TOFINO__ == 2
#define TNA_CPU_PORT_NUMBER 0
#else
#define TNA_CPU_PORT_NUMBER 64
#endif
#endif
const PortId_t TNA_CPU_PORT = TNA_CPU_PORT_NUMBER;

// Mirror sessions: CPU_CLONE_SESSION_ID (shared constants) sends a copy to TNA_CPU_PORT;
// capture node b with truncation uses session CAPTURE_MIRROR_SESSION_BASE + b, whose
// max packet length the controller sets to the node's truncate_bytes.
const MirrorId_t CPU_MIRROR_SESSION = (MirrorId_t)CPU_CLONE_SESSION_ID;
const MirrorId_t CAPTURE_MIRROR_SESSION_BASE = 128;

// ingress_intrinsic_metadata_for_deparser_t selectors.
const MirrorType_t MIRROR_TYPE_CPU = 1;        // copy to the CPU with cpu_mirror_md_t
const MirrorType_t MIRROR_TYPE_CAPTURE = 2;    // truncated copy to a capture node
const DigestType_t DIGEST_TYPE_NEW_FLOW = 1;
const ResubmitType_t RESUBMIT_TYPE_ACTIVATE = 1;

// The first byte after egress_intrinsic_metadata_t says which of the headers below follows.
typedef bit<8> bridge_kind_t;
const bridge_kind_t BRIDGE_KIND_NORMAL = 1;    // the packet itself, with bridged_md_t
const bridge_kind_t BRIDGE_KIND_CPU = 2;       // an ingress mirror copy for the CPU
const bridge_kind_t BRIDGE_KIND_CAPTURE = 3;   // an ingress mirror copy for a capture node

// Ingress -> egress with every packet (TNA has no metadata that crosses the traffic
// manager by itself).
header bridged_md_t {
    bridge_kind_t kind;
    port_id_t ingress_port;
    bit<1> flooded;            // an l2_flood copy: pruned on its own ingress port
    bit<1> check_ip_length;    // egress checks pkt_length against ip_end
    bit<5> _pad;
    bit<16> ip_end;            // bytes up to the end of the IP packet, as received
    bit<16> added_bytes;       // what ingress added in front of it (IP-in-IP: 20)
}
const bit<16> BRIDGED_MD_BYTES = 7;   // bridged_md_t: 8 + 9 + 1 + 1 + 5 + 16 + 16 bits

// Ingress mirror header of a copy for the CPU: what the packet-in header will say
// (7 bytes; its size against the chip's mirror limit is for bf-p4c to check).
header cpu_mirror_md_t {
    bridge_kind_t kind;
    port_id_t ingress_port;
    bit<7> _pad;
    PacketInReason reason;
    DropReason drop_reason;
    backend_id_t backend_id;   // where the original went (0: none): the packet-in's
}

// Ingress mirror header of a truncated capture copy.
header capture_mirror_md_t {
    bridge_kind_t kind;
}

// Carried by a resubmitted packet (64 bits on Tofino 1): "this is the pass that
// activates the `flows` entry the first pass hit" (flow_dispatch.p4).
header resubmit_md_t {
    bit<8> activate;
    bit<56> _pad;
}

struct tna_headers_t {
    bridged_md_t bridged;      // written by ingress in front of the packet, parsed by egress
    packet_out_t packet_out;
    packet_in_t packet_in;
    ethernet_t ethernet;
    vlan_tag_t vlan;
    ipv4_t outer_ipv4;         // IP-in-IP encapsulation, written by the backend stage
    ipv4_t ipv4;
    ipv4_options_t ipv4_options;
    ipv6_t ipv6;
    tcp_t tcp;
    udp_t udp;
}

// The new-flow digest as Tofino sends it. A learning quantum holds at most 48 bytes
// (384 bits, selector byte included) on Tofino 1 and 2; flow_digest_t is 57, so the
// two members the controller does not use (cache_slot, timestamp_us) are left out.
// Member order is flow_digest_t's (controller/dataplane/flow_digest.py decodes both).
struct tna_flow_digest_t {
    flow_addr_t src_addr;
    flow_addr_t dst_addr;
    bit<8> protocol;
    bit<16> src_port;
    bit<16> dst_port;
    service_id_t service_id;
    backend_id_t backend_id;
    bit<8> tcp_flags;
    bit<32> rtt_us;
    bit<8> flags;
}

// Time on Tofino, from the 48-bit global timestamp (ns, wraps every 78 hours), in two
// 32-bit clocks (a stateful ALU holds 32 bits a half; no divider, so units are powers of 2):
//   fine    1,024 ns units, timestamp bits 41..10: the caller's SYN time, for the RTT sample
//           (wraps every 73 minutes; a difference of two fine times is right below that);
//   coarse  2^26 ns = 67.1 ms units: timestamp bits 47..26 under a 10-bit count of the
//           timestamp's wraps (the `clock` register, ingress.p4), so it wraps every 9 years.
//           When a cache way or ring entry was last used and when a digest was sent are
//           coarse; so are the cache timeout and digest retry interval (the controller
//           writes them so: controller/p4runtime/targets.py). A stateful ALU compares a
//           register with one PHV value, so "now - seen < timeout" is "seen - (now -
//           timeout) > 0", a signed difference: right while intervals stay under 4.5 years,
//           so an empty way (seen 0) is never live but in the first timeout after boot.
typedef bit<32> tna_time_t;

struct timestamp_wraps_t {
    bit<32> last_high;         // timestamp bits 47..26 of the last packet
    bit<32> wraps;             // how often they went down
}

struct ingress_metadata_t {
    tna_time_t now;            // fine clock
    tna_time_t now_coarse;     // coarse clock
    bit<32> timestamp_high;    // global timestamp bits 47..26
    DropReason drop_reason;
    bool resubmitted;          // second pass: activate the `flows` entry

    // What the packet carries (parser).
    bool is_ip;
    bool is_ip_fragment;
    bool ipv4_checksum_bad;
    bool has_l4;
    bit<8> tcp_flags;
    bit<16> l4_src_port;
    bit<16> l4_dst_port;
    bit<16> l3_header_offset;

    // Classification.
    bit<8> service_mode;
    service_id_t service_id;
    bit<16> ring_mask;
    bit<32> ring_base;
    bool is_vip;
    bool ring_by_client;       // client affinity: the ring slot from the client's address only

    // Flow identity.
    flow_key_t flow;
    bit<32> flow_hash;         // CRC-32: cache set (low bits), ring slot (high 16 bits)
    bit<32> signature;         // CRC-32C: what a cache way stores in place of the key
    bit<16> cache_set;
    ring_slot_t ring_slot;

    // What the `flows` entry and the ring entry say (read by stateful ALUs).
    bit<32> entry_id_low;      // low 32 bits of the entry's id
    backend_id_t ring_backend;
    bit<32> ring_generation;

    // Dispatch decision.
    bit<8> flow_state;
    backend_id_t backend_id;
    bool has_backend;
    bool is_new_flow;
    bit<32> truncate_bytes;

    // Timers from dispatch_settings (coarse units), and what the stateful ALUs compare
    // registers with, computed once per packet.
    tna_time_t cache_timeout;
    tna_time_t digest_retry;
    tna_time_t live_after;     // now_coarse - cache_timeout: later stamps are live
    tna_time_t retry_before;   // now_coarse - digest_retry: earlier digests are due again
    tna_time_t entry_idle;     // the `flows` entries' idle timeout (0: not checked)
    tna_time_t idle_after;     // entries that decided a packet after this are not idle
    tna_time_t stamp;          // now | 1: a fine time that is never 0 (0: none)
    tna_time_t stamp_coarse;   // now_coarse | 1

    // Packet-in fields for a mirror copy to the CPU.
    port_id_t cpu_ingress_port;
    PacketInReason cpu_reason;
    DropReason cpu_drop_reason;
    MirrorId_t mirror_session;

    tna_flow_digest_t digest;
    cpu_mirror_md_t cpu_mirror;
    capture_mirror_md_t capture_mirror;
    resubmit_md_t resubmit;
}

struct egress_metadata_t {
    cpu_mirror_md_t cpu_mirror;
    capture_mirror_md_t capture_mirror;
}

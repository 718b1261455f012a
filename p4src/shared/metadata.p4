// Per-packet metadata and the messages the data plane sends to the controller.
#ifndef FLOW_DISPATCHER_METADATA_P4
#define FLOW_DISPATCHER_METADATA_P4

#include "headers.p4"

// The flow key every dispatch decision is made on. IPv4 addresses are IPv4-mapped.
// In capture mode the two endpoints are sorted, so both directions share one key.
struct flow_key_t {
    bit<128> src_addr;
    bit<128> dst_addr;
    bit<8> protocol;
    bit<16> src_port;
    bit<16> dst_port;
}

// New-flow digest: sent once a flow is confirmed (TCP: the caller's first ACK after its
// SYN; other protocols: first packet) and again while its `flows` entry is missing.
struct flow_digest_t {
    bit<128> src_addr;
    bit<128> dst_addr;
    bit<8> protocol;
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> service_id;
    bit<16> backend_id;
    bit<32> cache_slot;
    bit<48> timestamp_us;   // ingress timestamp of the confirming packet
    bit<8> tcp_flags;       // flags of the confirming packet
    bit<32> rtt_us;         // caller's last SYN -> first ACK, when DIGEST_FLAG_RTT_VALID
    bit<8> flags;           // DIGEST_FLAG_*
}

struct local_metadata_t {
    bit<48> now_us;
    bit<8> drop_reason;

    // What the packet carries.
    bool is_ip;
    bool is_ip_fragment;
    bool ipv4_checksum_bad;
    bool has_l4;
    bit<8> tcp_flags;
    bit<16> l4_src_port;
    bit<16> l4_dst_port;
    bit<16> l3_header_offset;  // bytes before the IP header (Ethernet, VLAN)

    // Classification.
    bit<8> service_mode;
    bit<16> service_id;
    bit<16> ring_mask;
    bool is_vip;

    // Flow identity.
    flow_key_t flow;
    bit<32> flow_hash;
    bit<32> cache_index;
    bit<32> signature;
    bit<16> ring_slot;

    // Dispatch decision.
    bit<8> flow_state;
    bit<16> backend_id;
    bool has_backend;
    bool is_new_flow;       // SA2C's "new": a connection that has not started yet
    bit<32> truncate_bytes; // capture output: keep this many bytes (0: whole packet)

    // Admission.
    bit<8> admission_level;
    bit<16> admission_prob;

    // Timers written by the controller (dispatch_settings).
    bit<48> cache_timeout_us;
    bit<48> digest_retry_us;

    flow_digest_t digest;

    // Preserved on the clone to the CPU port.
    @field_list(1)
    bit<9> cpu_ingress_port;
    @field_list(1)
    bit<8> cpu_reason;
}

#endif

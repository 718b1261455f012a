// What every target computes per flow and what it tells the controller about new flows.
#ifndef FLOW_DISPATCHER_METADATA_P4
#define FLOW_DISPATCHER_METADATA_P4

#include "types.p4"

// The flow key every dispatch decision is made on. IPv4 addresses are IPv4-mapped.
// In capture mode the two endpoints are sorted, so both directions share one key.
struct flow_key_t {
    flow_addr_t src_addr;
    flow_addr_t dst_addr;
    bit<8> protocol;
    bit<16> src_port;
    bit<16> dst_port;
}

// New-flow digest: sent once a flow is confirmed (TCP: the caller's first ACK after its
// SYN; other protocols: first packet) and again while its `flows` entry is missing.
struct flow_digest_t {
    flow_addr_t src_addr;
    flow_addr_t dst_addr;
    bit<8> protocol;
    bit<16> src_port;
    bit<16> dst_port;
    service_id_t service_id;
    backend_id_t backend_id;
    cache_index_t cache_slot;
    time_us_t timestamp_us;   // ingress timestamp of the confirming packet
    bit<8> tcp_flags;         // flags of the confirming packet
    bit<32> rtt_us;           // caller's last SYN -> first ACK, when DIGEST_FLAG_RTT_VALID
    bit<8> flags;             // DIGEST_FLAG_*
}

#endif

// Packet headers parsed or written by the dispatcher.
#ifndef FLOW_DISPATCHER_HEADERS_P4
#define FLOW_DISPATCHER_HEADERS_P4

#include "constants.p4"
#include "types.p4"

// Sent to the controller with every packet-in (signalling clones, reactive punts).
@controller_header("packet_in")
header packet_in_t {
    port_id_t ingress_port;
    bit<7> _pad;
    PacketInReason reason;
    DropReason drop_reason;   // with reason DROPPED: why the packet was dropped
    backend_id_t backend_id;  // the backend this packet was sent to (0: none), e.g. a signalling
                              // flow's: the controller needs it before the flow's digest comes
}

// Prepended by the controller to every packet-out: the port to send it from, or, with
// `dispatch` set, "forward this as if it had just arrived" (reactive mode re-injects a
// punted packet once its `flows` entry is written, so the usual stages rewrite it).
@controller_header("packet_out")
header packet_out_t {
    port_id_t egress_port;
    bit<1> dispatch;
    bit<6> _pad;
}

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16> ether_type;
}

header vlan_tag_t {
    bit<3> pcp;
    bit<1> dei;
    bit<12> vid;
    bit<16> ether_type;
}

header ipv4_t {
    bit<4> version;
    bit<4> ihl;
    bit<8> diffserv;
    bit<16> total_len;
    bit<16> identification;
    bit<3> flags;
    bit<13> frag_offset;
    bit<8> ttl;
    bit<8> protocol;
    bit<16> hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

// IPv4 options: up to 40 bytes (IHL 15).
header ipv4_options_t {
    varbit<320> options;
}

header ipv6_t {
    bit<4> version;
    bit<8> traffic_class;
    bit<20> flow_label;
    bit<16> payload_len;
    bit<8> next_hdr;
    bit<8> hop_limit;
    ipv6_addr_t src_addr;
    ipv6_addr_t dst_addr;
}

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4> data_offset;
    bit<4> res;
    bit<8> flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> length;
    bit<16> checksum;
}

struct headers_t {
    packet_out_t packet_out;
    packet_in_t packet_in;
    ethernet_t ethernet;
    vlan_tag_t vlan;
    ipv4_t outer_ipv4;     // IP-in-IP encapsulation, written by the backend stage
    ipv4_t ipv4;
    ipv4_options_t ipv4_options;
    ipv6_t ipv6;
    tcp_t tcp;
    udp_t udp;
}

#endif

// Baseline for the forwarding benchmark: the least a useful switch does.
// Ethernet parse, one exact table on the ingress port, forward. Nothing else.

#include <core.p4>
#include <v1model.p4>

header ethernet_t {
    bit<48> dst_addr;
    bit<48> src_addr;
    bit<16> ether_type;
}

struct headers_t { ethernet_t ethernet; }
struct metadata_t { }

parser MinimalParser(packet_in packet, out headers_t hdr, inout metadata_t meta,
                     inout standard_metadata_t standard_metadata) {
    state start {
        packet.extract(hdr.ethernet);
        transition accept;
    }
}

control MinimalVerifyChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MinimalIngress(inout headers_t hdr, inout metadata_t meta,
                       inout standard_metadata_t standard_metadata) {
    action output(bit<9> port) { standard_metadata.egress_spec = port; }
    action drop() { mark_to_drop(standard_metadata); }

    // Filled by the benchmark: ingress port -> output port.
    table port_forward {
        key = { standard_metadata.ingress_port : exact @name("ingress_port"); }
        actions = { output; drop; }
        default_action = drop();
        size = 64;
    }

    apply { port_forward.apply(); }
}

control MinimalEgress(inout headers_t hdr, inout metadata_t meta,
                      inout standard_metadata_t standard_metadata) { apply { } }

control MinimalComputeChecksum(inout headers_t hdr, inout metadata_t meta) { apply { } }

control MinimalDeparser(packet_out packet, in headers_t hdr) {
    apply { packet.emit(hdr.ethernet); }
}

V1Switch(MinimalParser(), MinimalVerifyChecksum(), MinimalIngress(), MinimalEgress(),
         MinimalComputeChecksum(), MinimalDeparser()) main;

// Backend forwarding: the `backends` table of p4src/v1model/backend_forward.p4, same
// actions and parameters.
//   forward_dsr      direct server return: only the destination MAC changes
//   forward_ipip     IP-in-IP (RFC 2003; IPv6 inner as protocol 41); the outer checksum
//                    is computed in the ingress deparser (deparser.p4)
//   forward_capture  capture node: the packet unchanged; truncated by a mirror session
//   punt_to_controller  reactive mode: to the CPU port with a packet-in header
//
// What TNA changes: there is no truncate(). A capture node with truncate_bytes != 0
// gets an ingress mirror copy through session CAPTURE_MIRROR_SESSION_BASE + backend_id,
// whose maximum packet length the controller sets to truncate_bytes, and the original
// is dropped. The packet-in header of a punt is written here (ingress knows the reason;
// egress on TNA does not see ingress metadata that was not bridged).

control BackendForward(inout tna_headers_t hdr,
                       inout ingress_metadata_t meta,
                       in ingress_intrinsic_metadata_t ig_intr_md,
                       inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                       inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {

    Counter<bit<64>, backend_id_t>(BACKENDS_TABLE_SIZE, CounterType_t.PACKETS_AND_BYTES) backend_traffic;

    action forward_dsr(port_id_t port, mac_addr_t dst_mac) {
        ig_tm_md.ucast_egress_port = port;
        hdr.ethernet.dst_addr = dst_mac;
    }

    action forward_ipip(port_id_t port, mac_addr_t src_mac, mac_addr_t dst_mac,
                        ipv4_addr_t outer_src, ipv4_addr_t outer_dst) {
        ig_tm_md.ucast_egress_port = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
        hdr.outer_ipv4.setValid();
        hdr.outer_ipv4.version = 4;
        hdr.outer_ipv4.ihl = 5;
        hdr.outer_ipv4.identification = 0;
        hdr.outer_ipv4.flags = 0;
        hdr.outer_ipv4.frag_offset = 0;
        hdr.outer_ipv4.ttl = IPIP_OUTER_TTL;
        hdr.outer_ipv4.hdr_checksum = 0;
        hdr.outer_ipv4.src_addr = outer_src;
        hdr.outer_ipv4.dst_addr = outer_dst;
        hdr.bridged.added_bytes = IPV4_MIN_HEADER_BYTES;
    }

    action forward_capture(port_id_t port, bit<32> truncate_bytes) {
        ig_tm_md.ucast_egress_port = port;
        meta.truncate_bytes = truncate_bytes;
    }

    action punt_to_controller() {
        ig_tm_md.ucast_egress_port = TNA_CPU_PORT;
        hdr.packet_in.setValid();
        hdr.packet_in.ingress_port = ig_intr_md.ingress_port;
        hdr.packet_in._pad = 0;
        hdr.packet_in.reason = PacketInReason.REACTIVE;
        hdr.packet_in.drop_reason = DropReason.NONE;
        hdr.packet_in.backend_id = 0;   // reactive: no backend decided yet
    }

    action no_backend() {
        meta.drop_reason = DropReason.NO_BACKEND;
    }

    // Filled by the controller: one entry per backend of every service, and in reactive
    // mode one punt_to_controller entry that the service's whole ring points at.
    table backends {
        key = { meta.backend_id : exact @name("backend_id"); }
        actions = { forward_dsr; forward_ipip; forward_capture; punt_to_controller;
                    @defaultonly no_backend; }
        const default_action = no_backend();
        size = BACKENDS_TABLE_SIZE;
    }

    apply {
        if (!backends.apply().hit) {
            return;
        }
        if (ig_dprsr_md.resubmit_type == 0) {
            backend_traffic.count(meta.backend_id);   // counted by the pass that forwards
        }
        if (hdr.outer_ipv4.isValid()) {
            // The inner packet's family decides the outer protocol and length.
            if (hdr.ipv4.isValid()) {
                hdr.outer_ipv4.protocol = IP_PROTO_IPV4_IN_IP;
                hdr.outer_ipv4.diffserv = hdr.ipv4.diffserv;
                hdr.outer_ipv4.total_len = hdr.ipv4.total_len + IPV4_MIN_HEADER_BYTES;
            } else {
                hdr.outer_ipv4.protocol = IP_PROTO_IPV6_IN_IP;
                hdr.outer_ipv4.diffserv = hdr.ipv6.traffic_class;
                hdr.outer_ipv4.total_len =
                    hdr.ipv6.payload_len + (IPV6_HEADER_BYTES + IPV4_MIN_HEADER_BYTES);
            }
            if (hdr.vlan.isValid()) {
                hdr.vlan.ether_type = ETHERTYPE_IPV4;
            } else {
                hdr.ethernet.ether_type = ETHERTYPE_IPV4;
            }
        }
        if (meta.truncate_bytes != 0) {
            // A truncated copy through the node's mirror session; the original goes nowhere.
            ig_dprsr_md.mirror_type = MIRROR_TYPE_CAPTURE;
            meta.mirror_session = CAPTURE_MIRROR_SESSION_BASE + (MirrorId_t)meta.backend_id;
            meta.capture_mirror.setValid();
            meta.capture_mirror.kind = BRIDGE_KIND_CAPTURE;
            ig_dprsr_md.drop_ctl = 1;
        }
    }
}

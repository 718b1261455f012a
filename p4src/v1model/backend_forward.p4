// Backend forwarding: how a packet reaches the backend its flow was given.
//   forward_dsr      direct server return: only the destination MAC changes
//   forward_ipip     IP-in-IP (RFC 2003; IPv6 inner as protocol 41), outer addresses
//                    from the entry, outer checksum in checksums.p4
//   forward_capture  capture node: the packet unchanged, optionally truncated
//   punt_to_controller  reactive mode only: the controller decides, writes the flow's
//                    entry and sends the packet back (packet-out with `dispatch`)

control BackendForward(inout headers_t hdr,
                       inout local_metadata_t meta,
                       inout standard_metadata_t standard_metadata) {

    counter(BACKENDS_TABLE_SIZE, CounterType.packets_and_bytes) backend_traffic;

    action forward_dsr(port_id_t port, mac_addr_t dst_mac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.dst_addr = dst_mac;
    }

    action forward_ipip(port_id_t port, mac_addr_t src_mac, mac_addr_t dst_mac,
                        ipv4_addr_t outer_src, ipv4_addr_t outer_dst) {
        standard_metadata.egress_spec = port;
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
    }

    action forward_capture(port_id_t port, bit<32> truncate_bytes) {
        standard_metadata.egress_spec = port;
        meta.truncate_bytes = truncate_bytes;
    }

    action punt_to_controller() {
        standard_metadata.egress_spec = CPU_PORT;
        meta.cpu_ingress_port = standard_metadata.ingress_port;
        meta.cpu_reason = PacketInReason.REACTIVE;
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
        backend_traffic.count((bit<32>)meta.backend_id);
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
                    hdr.ipv6.payload_len + IPV6_HEADER_BYTES + IPV4_MIN_HEADER_BYTES;
            }
            if (hdr.vlan.isValid()) {
                hdr.vlan.ether_type = ETHERTYPE_IPV4;
            } else {
                hdr.ethernet.ether_type = ETHERTYPE_IPV4;
            }
        }
        if (meta.truncate_bytes != 0) {
            truncate(meta.truncate_bytes);
        }
    }
}

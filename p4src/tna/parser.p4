// Parsers. Ingress: Ethernet, one 802.1Q tag, IPv4 (with options), IPv6, TCP, UDP, and the
// packet-out header on packets from the CPU port. Egress: only the bridged or mirror header
// ingress put in front (egress writes nothing but the packet-in header, in front of the
// packet, so the rest goes through as payload).
//
// v1model's verify() sets a parser error that ingress maps to a drop reason. Tofino's
// parser has no user errors: the field checks (IPv4 version and IHL, IPv6 version, TCP
// data offset, UDP length) move to Validation (validation.p4), and only a header cut
// short (PARSER_ERROR_PARTIAL_HDR) comes from the parser. The IPv4 checksum is verified
// here with the Checksum extern; its result goes to ingress as ipv4_checksum_bad.

parser DispatcherIngressParser(packet_in packet,
                               out tna_headers_t hdr,
                               out ingress_metadata_t meta,
                               out ingress_intrinsic_metadata_t ig_intr_md) {

    Checksum() ipv4_checksum;

    state start {
        // Tofino zeroes metadata that no parser state writes; the fields whose zero is
        // not their start value are set here.
        meta.l3_header_offset = 14;
        meta.drop_reason = DropReason.NONE;
        meta.service_mode = SERVICE_MODE_NONE;
        meta.flow_state = FLOW_STATE_NONE;
        meta.cpu_mirror.setInvalid();
        meta.capture_mirror.setInvalid();
        meta.resubmit.setInvalid();
        packet.extract(ig_intr_md);
        transition select(ig_intr_md.resubmit_flag) {
            1: parse_resubmit;
            default: parse_port_metadata;
        }
    }

    state parse_resubmit {
        packet.extract(meta.resubmit);
        meta.resubmitted = true;
        transition parse_from_port;
    }

    state parse_port_metadata {
        packet.advance(PORT_METADATA_SIZE);
        transition parse_from_port;
    }

    state parse_from_port {
        transition select(ig_intr_md.ingress_port) {
            TNA_CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }

    state parse_packet_out {
        packet.extract(hdr.packet_out);
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_VLAN: parse_vlan;
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_vlan {
        packet.extract(hdr.vlan);
        meta.l3_header_offset = 18;
        transition select(hdr.vlan.ether_type) {
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        ipv4_checksum.add(hdr.ipv4);
        meta.is_ip = true;
        // A fragment: More Fragments set or a non-zero offset.
        meta.is_ip_fragment = (hdr.ipv4.flags & 3w1) == 3w1 || hdr.ipv4.frag_offset != 0;
        transition select(hdr.ipv4.ihl) {
            5: parse_ipv4_no_options;
            6 &&& 4w0xE: parse_ipv4_options;   // 6, 7
            8 &&& 4w0x8: parse_ipv4_options;   // 8-15
            default: accept;                   // IHL < 5: Validation drops it
        }
    }

    state parse_ipv4_no_options {
        meta.ipv4_checksum_bad = ipv4_checksum.verify() == false;
        transition parse_ipv4_payload;
    }

    state parse_ipv4_options {
        packet.extract(hdr.ipv4_options, (bit<32>)(((bit<16>)hdr.ipv4.ihl - 5) * 32));
        ipv4_checksum.add(hdr.ipv4_options);
        meta.ipv4_checksum_bad = ipv4_checksum.verify() == false;
        transition parse_ipv4_payload;
    }

    state parse_ipv4_payload {
        // Only the first fragment carries the L4 header.
        transition select(hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (0, IP_PROTO_TCP): parse_tcp;
            (0, IP_PROTO_UDP): parse_udp;
            default: accept;
        }
    }

    state parse_ipv6 {
        packet.extract(hdr.ipv6);
        meta.is_ip = true;
        transition select(hdr.ipv6.next_hdr) {
            IP_PROTO_TCP: parse_tcp;
            IP_PROTO_UDP: parse_udp;
            IPV6_NH_FRAGMENT: parse_ipv6_fragment;
            default: accept;
        }
    }

    state parse_ipv6_fragment {
        meta.is_ip_fragment = true;
        transition accept;
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        meta.has_l4 = true;
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        meta.tcp_flags = hdr.tcp.flags;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        meta.has_l4 = true;
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        transition accept;
    }
}

parser DispatcherEgressParser(packet_in packet,
                              out tna_headers_t hdr,
                              out egress_metadata_t meta,
                              out egress_intrinsic_metadata_t eg_intr_md) {
    state start {
        meta.cpu_mirror.setInvalid();
        meta.capture_mirror.setInvalid();
        packet.extract(eg_intr_md);
        transition select(packet.lookahead<bridge_kind_t>()) {
            BRIDGE_KIND_CPU: parse_cpu_mirror;
            BRIDGE_KIND_CAPTURE: parse_capture_mirror;
            default: parse_bridged;
        }
    }

    state parse_bridged {
        packet.extract(hdr.bridged);
        transition accept;
    }

    state parse_cpu_mirror {
        packet.extract(meta.cpu_mirror);
        transition accept;
    }

    state parse_capture_mirror {
        packet.extract(meta.capture_mirror);
        transition accept;   // sent as it is, truncated by its mirror session
    }
}

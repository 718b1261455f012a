// Parser: Ethernet, one 802.1Q tag, IPv4 (with options), IPv6, TCP, UDP.
// A header that does not fit, or fails a check below, stops parsing with an error;
// ingress (validation.p4) then drops the packet and counts the reason.

error {
    IPv4BadVersion,
    IPv4BadIhl,
    IPv6BadVersion,
    TcpBadDataOffset,
    UdpBadLength
}

parser DispatcherParser(packet_in packet,
                        out headers_t hdr,
                        inout local_metadata_t meta,
                        inout standard_metadata_t standard_metadata) {

    state start {
        meta.l3_header_offset = 14;
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
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
        verify(hdr.ipv4.version == 4, error.IPv4BadVersion);
        verify(hdr.ipv4.ihl >= 5, error.IPv4BadIhl);
        meta.is_ip = true;
        // A fragment: More Fragments set or a non-zero offset.
        meta.is_ip_fragment = (hdr.ipv4.flags & 3w1) == 3w1 || hdr.ipv4.frag_offset != 0;
        transition select(hdr.ipv4.ihl) {
            5: parse_ipv4_payload;
            default: parse_ipv4_options;
        }
    }

    state parse_ipv4_options {
        packet.extract(hdr.ipv4_options, (bit<32>)(((bit<16>)hdr.ipv4.ihl - 5) * 32));
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
        verify(hdr.ipv6.version == 6, error.IPv6BadVersion);
        meta.is_ip = true;
        // Extension headers other than a fragment header are not walked: such packets
        // are dispatched on their addresses and next header alone.
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
        verify(hdr.tcp.data_offset >= 5, error.TcpBadDataOffset);
        meta.has_l4 = true;
        meta.l4_src_port = hdr.tcp.src_port;
        meta.l4_dst_port = hdr.tcp.dst_port;
        meta.tcp_flags = hdr.tcp.flags;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        verify(hdr.udp.length >= 8, error.UdpBadLength);
        meta.has_l4 = true;
        meta.l4_src_port = hdr.udp.src_port;
        meta.l4_dst_port = hdr.udp.dst_port;
        transition accept;
    }
}

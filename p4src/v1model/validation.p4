// Validation: the rule for malformed and truncated packets is "drop and count by reason".
// Nothing half-parsed is forwarded. Sets meta.drop_reason; the ingress does the drop.
// One exception: a wrong IPv4 header checksum only marks the packet; the classifier
// decides (capture nodes want what was on the wire, servers do not).

control Validation(in headers_t hdr,
                   inout local_metadata_t meta,
                   in standard_metadata_t standard_metadata) {

    apply {
        if (standard_metadata.parser_error == error.PacketTooShort) {
            meta.drop_reason = DropReason.PARSER_TRUNCATED;
        } else if (standard_metadata.parser_error == error.IPv4BadVersion) {
            meta.drop_reason = DropReason.IPV4_BAD_VERSION;
        } else if (standard_metadata.parser_error == error.IPv4BadIhl) {
            meta.drop_reason = DropReason.IPV4_BAD_IHL;
        } else if (standard_metadata.parser_error == error.IPv6BadVersion) {
            meta.drop_reason = DropReason.IPV6_BAD_VERSION;
        } else if (standard_metadata.parser_error == error.TcpBadDataOffset) {
            meta.drop_reason = DropReason.TCP_BAD_OFFSET;
        } else if (standard_metadata.parser_error == error.UdpBadLength) {
            meta.drop_reason = DropReason.UDP_BAD_LENGTH;
        } else if (standard_metadata.parser_error != error.NoError) {
            meta.drop_reason = DropReason.PARSER_OTHER;
        } else if (hdr.ipv4.isValid()) {
            bit<16> header_bytes = ((bit<16>)hdr.ipv4.ihl) << 2;
            if (hdr.ipv4.total_len < header_bytes) {
                meta.drop_reason = DropReason.IPV4_BAD_TOTAL_LEN;
            } else if (standard_metadata.packet_length <
                       (bit<32>)meta.l3_header_offset + (bit<32>)hdr.ipv4.total_len) {
                meta.drop_reason = DropReason.IP_TRUNCATED;
            }
            meta.ipv4_checksum_bad = standard_metadata.checksum_error == 1;
        } else if (hdr.ipv6.isValid()) {
            // payload_len 0 is a jumbogram (hop-by-hop option): not checked here.
            if (standard_metadata.packet_length <
                (bit<32>)meta.l3_header_offset + (bit<32>)IPV6_HEADER_BYTES
                + (bit<32>)hdr.ipv6.payload_len) {
                meta.drop_reason = DropReason.IP_TRUNCATED;
            }
        }
    }
}

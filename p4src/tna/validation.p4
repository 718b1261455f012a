// Validation: malformed and truncated packets are dropped and counted by reason, as on
// v1model. Sets meta.drop_reason; the ingress does the drop.
// What TNA changes: the header field checks that v1model makes in the parser with
// verify() are made here, on the parsed fields, in the same order of precedence; and
// ingress does not know the packet's length, so "shorter than the IP length says"
// (IP_TRUNCATED) is checked in egress (egress.p4) against pkt_length.

control Validation(in tna_headers_t hdr,
                   inout ingress_metadata_t meta,
                   in ingress_intrinsic_metadata_from_parser_t ig_prsr_md) {

    apply {
        if (ig_prsr_md.parser_err & PARSER_ERROR_PARTIAL_HDR != 0) {
            meta.drop_reason = DropReason.PARSER_TRUNCATED;
        } else if (ig_prsr_md.parser_err != PARSER_ERROR_OK) {
            meta.drop_reason = DropReason.PARSER_OTHER;
        } else if (hdr.ipv4.isValid()) {
            bit<16> header_bytes = ((bit<16>)hdr.ipv4.ihl) << 2;
            if (hdr.ipv4.version != 4) {
                meta.drop_reason = DropReason.IPV4_BAD_VERSION;
            } else if (hdr.ipv4.ihl < 5) {
                meta.drop_reason = DropReason.IPV4_BAD_IHL;
            } else if (hdr.ipv4.total_len < header_bytes) {
                meta.drop_reason = DropReason.IPV4_BAD_TOTAL_LEN;
            }
        } else if (hdr.ipv6.isValid() && hdr.ipv6.version != 6) {
            meta.drop_reason = DropReason.IPV6_BAD_VERSION;
        }
        if (meta.drop_reason == DropReason.NONE) {
            if (hdr.tcp.isValid() && hdr.tcp.data_offset < 5) {
                meta.drop_reason = DropReason.TCP_BAD_OFFSET;
            } else if (hdr.udp.isValid() && hdr.udp.length < 8) {
                meta.drop_reason = DropReason.UDP_BAD_LENGTH;
            }
        }
    }
}

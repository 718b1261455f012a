// Deparsers. Ingress: the bridged header first (egress parses it), then the headers in
// wire order; the outer IPv4 checksum (IP-in-IP) with the Checksum extern; the new-flow
// digest (Digest extern, its P4Info name flow_digest_t as on v1model); mirror copies
// (Mirror extern, with the header of their kind); the resubmit that activates a `flows`
// entry (Resubmit extern). Egress: the packet-in header on CPU copies, then the headers.

control DispatcherIngressDeparser(packet_out packet,
                                  inout tna_headers_t hdr,
                                  in ingress_metadata_t meta,
                                  in ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {

    Checksum() outer_ipv4_checksum;
    @name("flow_digest_t") Digest<tna_flow_digest_t>() flow_digest;
    Mirror() mirror;
    Resubmit() resubmit;

    apply {
        if (hdr.outer_ipv4.isValid()) {
            hdr.outer_ipv4.hdr_checksum = outer_ipv4_checksum.update({
                hdr.outer_ipv4.version, hdr.outer_ipv4.ihl, hdr.outer_ipv4.diffserv,
                hdr.outer_ipv4.total_len, hdr.outer_ipv4.identification,
                hdr.outer_ipv4.flags, hdr.outer_ipv4.frag_offset, hdr.outer_ipv4.ttl,
                hdr.outer_ipv4.protocol, hdr.outer_ipv4.src_addr, hdr.outer_ipv4.dst_addr });
        }
        if (ig_dprsr_md.digest_type == DIGEST_TYPE_NEW_FLOW) {
            flow_digest.pack(meta.digest);
        }
        if (ig_dprsr_md.mirror_type == MIRROR_TYPE_CPU) {
            mirror.emit<cpu_mirror_md_t>(meta.mirror_session, meta.cpu_mirror);
        } else if (ig_dprsr_md.mirror_type == MIRROR_TYPE_CAPTURE) {
            mirror.emit<capture_mirror_md_t>(meta.mirror_session, meta.capture_mirror);
        }
        if (ig_dprsr_md.resubmit_type == RESUBMIT_TYPE_ACTIVATE) {
            resubmit.emit<resubmit_md_t>(meta.resubmit);
        }
        packet.emit(hdr.bridged);
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.vlan);
        packet.emit(hdr.outer_ipv4);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_options);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

control DispatcherEgressDeparser(packet_out packet,
                                 inout tna_headers_t hdr,
                                 in egress_metadata_t meta,
                                 in egress_intrinsic_metadata_for_deparser_t eg_dprsr_md) {
    apply {
        packet.emit(hdr.packet_in);
    }
}

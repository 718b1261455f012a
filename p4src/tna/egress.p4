// Egress: flood pruning, the IP length check ingress could not make, per-port output
// counters, packet-in header on copies for the CPU.
// What TNA changes: egress sees only what ingress bridged (bridged_md_t) or put in a
// mirror header; the packet's length (pkt_length) is known only here, so the check
// "IP packet longer than what arrived" (IP_TRUNCATED) is made here and counted in
// egress_drops (a counter belongs to one gress), indexed by DropReason like `drops`.

control DispatcherEgress(inout tna_headers_t hdr,
                         inout egress_metadata_t meta,
                         in egress_intrinsic_metadata_t eg_intr_md,
                         in egress_intrinsic_metadata_from_parser_t eg_prsr_md,
                         inout egress_intrinsic_metadata_for_deparser_t eg_dprsr_md,
                         inout egress_intrinsic_metadata_for_output_port_t eg_oport_md) {

    Counter<bit<64>, port_id_t>(PORT_COUNT, CounterType_t.PACKETS_AND_BYTES) port_out;
    Counter<bit<32>, bit<8>>(DROP_REASON_COUNT, CounterType_t.PACKETS) egress_drops;
    PacketInEgress() packet_in_io;

    apply {
        if (hdr.bridged.isValid()) {
            if (hdr.bridged.flooded == 1 && eg_intr_md.egress_port == hdr.bridged.ingress_port) {
                // A flood copy never goes back out of the port it came in on.
                eg_dprsr_md.drop_ctl = 1;
                exit;
            }
            // pkt_length is taken to count what egress received: the bridged header, the
            // packet as ingress emitted it (with any header it added) and the 4-byte CRC.
            // Not yet checked on the Tofino model (docs/tna.md).
            if (hdr.bridged.check_ip_length == 1 &&
                eg_intr_md.pkt_length <
                    hdr.bridged.ip_end + hdr.bridged.added_bytes + (BRIDGED_MD_BYTES + 4)) {
                egress_drops.count((bit<8>)DropReason.IP_TRUNCATED);
                eg_dprsr_md.drop_ctl = 1;
                exit;
            }
            hdr.bridged.setInvalid();
        }
        port_out.count(eg_intr_md.egress_port);
        packet_in_io.apply(hdr, meta);
    }
}

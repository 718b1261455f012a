// Packet I/O with the controller (TNA_CPU_PORT):
//   packet-out  the controller prepends packet_out_t: send from a port, or (`dispatch`)
//               run the packet through the pipeline as if it had just arrived;
//   packet-in   reactive punts get packet_in_t in ingress (backend_forward.p4); mirror
//               copies (signalling, dropped packets) get it in egress from their mirror
//               header.
// What TNA changes: exit in ingress would skip the deparser's bridged header, so a plain
// packet-out sets `done` and the ingress skips its stages instead.

control PacketOutIngress(inout tna_headers_t hdr,
                         inout ingress_intrinsic_metadata_for_tm_t ig_tm_md,
                         out bool done) {
    apply {
        done = false;
        if (hdr.packet_out.isValid()) {
            bit<1> dispatch = hdr.packet_out.dispatch;
            port_id_t egress_port = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            if (dispatch == 0) {
                // Straight out of the port the controller names.
                ig_tm_md.ucast_egress_port = egress_port;
                done = true;
            }
        }
    }
}

control PacketInEgress(inout tna_headers_t hdr, in egress_metadata_t meta) {
    apply {
        if (meta.cpu_mirror.isValid()) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.cpu_mirror.ingress_port;
            hdr.packet_in._pad = 0;
            hdr.packet_in.reason = meta.cpu_mirror.reason;
            hdr.packet_in.drop_reason = meta.cpu_mirror.drop_reason;
            hdr.packet_in.backend_id = meta.cpu_mirror.backend_id;
        }
    }
}

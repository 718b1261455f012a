// Packet I/O with the controller (CPU_PORT):
//   packet-out  the controller prepends packet_out_t: send from a port, or (`dispatch`)
//               run the packet through the pipeline as if it had just arrived;
//   packet-in   signalling clones (signalling.p4) and reactive punts (backend_forward.p4)
//               leave for the CPU port with packet_in_t: ingress port and reason.

control PacketOutIngress(inout headers_t hdr, inout standard_metadata_t standard_metadata) {
    apply {
        if (hdr.packet_out.isValid()) {
            bit<1> dispatch = hdr.packet_out.dispatch;
            port_id_t egress_port = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            if (dispatch == 0) {
                // Straight out of the port the controller names.
                standard_metadata.egress_spec = egress_port;
                exit;
            }
        }
    }
}

control PacketInEgress(inout headers_t hdr,
                       in local_metadata_t meta,
                       in standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_INGRESS_CLONE ||
            standard_metadata.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.cpu_ingress_port;
            hdr.packet_in._pad = 0;
            hdr.packet_in.reason = meta.cpu_reason;
            hdr.packet_in.drop_reason = meta.cpu_drop_reason;
            hdr.packet_in.backend_id = meta.cpu_backend_id;
        }
    }
}

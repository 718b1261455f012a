// Egress: packet-in header on packets to the CPU, flood pruning, per-port output counters.

control DispatcherEgress(inout headers_t hdr,
                         inout local_metadata_t meta,
                         inout standard_metadata_t standard_metadata) {

    counter(PORT_COUNT, CounterType.packets_and_bytes) port_out;

    apply {
        if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_REPLICATION &&
            standard_metadata.egress_port == standard_metadata.ingress_port) {
            // A flood copy never goes back out of the port it came in on.
            mark_to_drop(standard_metadata);
            exit;
        }
        port_out.count((bit<32>)standard_metadata.egress_port);
        if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_INGRESS_CLONE ||
            standard_metadata.egress_port == CPU_PORT) {
            // A signalling clone, or a reactive-mode punt (backend_forward.p4).
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = meta.cpu_ingress_port;
            hdr.packet_in._pad = 0;
            hdr.packet_in.reason = meta.cpu_reason;
        }
    }
}

// Egress: packet-in header on packets to the CPU, flood pruning, per-port output counters.

control DispatcherEgress(inout headers_t hdr,
                         inout local_metadata_t meta,
                         inout standard_metadata_t standard_metadata) {

    counter(PORT_COUNT, CounterType.packets_and_bytes) port_out;
    PacketInEgress() packet_in_io;

    apply {
        if (standard_metadata.instance_type == PKT_INSTANCE_TYPE_REPLICATION &&
            standard_metadata.egress_port == standard_metadata.ingress_port) {
            // A flood copy never goes back out of the port it came in on.
            mark_to_drop(standard_metadata);
            exit;
        }
        port_out.count((bit<32>)standard_metadata.egress_port);
        packet_in_io.apply(hdr, meta, standard_metadata);
    }
}

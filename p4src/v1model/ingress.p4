// Ingress: validate, classify, dispatch, forward. No packet waits for the controller.

control DispatcherIngress(inout headers_t hdr,
                          inout local_metadata_t meta,
                          inout standard_metadata_t standard_metadata) {

    counter(PORT_COUNT, CounterType.packets_and_bytes) port_in;
    counter(DROP_REASON_COUNT, CounterType.packets) drops;  // indexed by DropReason

    PacketOutIngress() packet_out;
    Validation() validation;
    FlowKeyExtract() flow_key_extract;
    Classifier() classifier;
    FlowKeyHash() flow_key_hash;
    FlowDispatch() flow_dispatch;
    BackendForward() backend_forward;
    Signalling() signalling;

    apply {
        meta.now_us = standard_metadata.ingress_global_timestamp;
        port_in.count((bit<32>)standard_metadata.ingress_port);

        packet_out.apply(hdr, standard_metadata);   // may send the packet out and exit

        validation.apply(hdr, meta, standard_metadata);
        if (meta.drop_reason == DropReason.NONE) {
            flow_key_extract.apply(hdr, meta.l4_src_port, meta.l4_dst_port, meta.flow);
            classifier.apply(hdr, meta, standard_metadata);
        }
        if (meta.ipv4_checksum_bad && meta.service_mode != SERVICE_MODE_CAPTURE &&
            meta.drop_reason == DropReason.NONE) {
            // Servers would drop it anyway; a capture node wants what was on the wire
            // (FlowDispatch counts it there).
            meta.drop_reason = DropReason.IPV4_BAD_CHECKSUM;
        }
        if (meta.drop_reason == DropReason.NONE && meta.service_mode != SERVICE_MODE_NONE) {
            flow_key_hash.apply(meta.service_mode == SERVICE_MODE_CAPTURE, meta.ring_mask, meta.flow,
                                meta.cache_index, meta.ring_slot);
            flow_dispatch.apply(hdr, meta, standard_metadata);
            if (meta.drop_reason == DropReason.NONE) {
                backend_forward.apply(hdr, meta, standard_metadata);
            }
        }
        if (meta.drop_reason == DropReason.NONE && meta.has_l4) {
            signalling.apply(hdr, meta, standard_metadata);
        }
        if (meta.drop_reason != DropReason.NONE) {
            drops.count((bit<32>)(bit<8>)meta.drop_reason);
            mark_to_drop(standard_metadata);
        }
    }
}

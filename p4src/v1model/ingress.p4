// Ingress: validate, classify, dispatch, forward. No packet waits for the controller.

control DispatcherIngress(inout headers_t hdr,
                          inout local_metadata_t meta,
                          inout standard_metadata_t standard_metadata) {

    counter(PORT_COUNT, CounterType.packets_and_bytes) port_in;
    counter(DROP_REASON_COUNT, CounterType.packets) drops;  // indexed by DropReason

    PacketOutIngress() packet_out_io;
    Validation() validation;

    action copy_dropped_to_cpu() {
        meta.cpu_ingress_port = standard_metadata.ingress_port;
        meta.cpu_reason = PacketInReason.DROPPED;
        meta.cpu_drop_reason = meta.drop_reason;
        clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION_ID, CLONE_FIELD_LIST_CPU);
    }

    // Filled by the operator through the controller: drop reasons whose packets also go to
    // the controller, to see what the dropped input looks like. Empty by default.
    table drop_copies {
        key = { meta.drop_reason : exact @name("reason"); }
        actions = { copy_dropped_to_cpu; @defaultonly NoAction; }
        const default_action = NoAction();
        size = 32;
    }
    FlowKeyExtract() flow_key_extract;
    Classifier() classifier;
    FlowKeyHash() flow_key_hash;
    FlowDispatch() flow_dispatch;
    BackendForward() backend_forward;
    Signalling() signalling;

    apply {
        meta.now_us = standard_metadata.ingress_global_timestamp;
        port_in.count((bit<32>)standard_metadata.ingress_port);

        packet_out_io.apply(hdr, standard_metadata);   // may send the packet out and exit

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
            flow_key_hash.apply(meta.service_mode == SERVICE_MODE_CAPTURE, meta.ring_by_client, meta.ring_mask, meta.flow,
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
            drop_copies.apply();
            mark_to_drop(standard_metadata);
        }
    }
}

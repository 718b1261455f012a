// Ingress: validate, classify, dispatch, forward. No packet waits for the controller.

control DispatcherIngress(inout headers_t hdr,
                          inout local_metadata_t meta,
                          inout standard_metadata_t standard_metadata) {

    counter(PORT_COUNT, CounterType.packets_and_bytes) port_in;
    counter(DROP_REASON_COUNT, CounterType.packets) drops;  // indexed by DROP_*

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

        if (hdr.packet_out.isValid()) {
            bit<1> dispatch = hdr.packet_out.dispatch;
            bit<9> egress_port = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
            if (dispatch == 0) {
                // From the controller: straight out of the port it names.
                standard_metadata.egress_spec = egress_port;
                exit;
            }
        }

        validation.apply(hdr, meta, standard_metadata);
        if (meta.drop_reason == DROP_NONE) {
            flow_key_extract.apply(hdr, meta);
            classifier.apply(hdr, meta, standard_metadata);
        }
        if (meta.ipv4_checksum_bad && meta.service_mode != SERVICE_MODE_CAPTURE &&
            meta.drop_reason == DROP_NONE) {
            // Servers would drop it anyway; a capture node wants what was on the wire
            // (FlowDispatch counts it there).
            meta.drop_reason = DROP_IPV4_BAD_CHECKSUM;
        }
        if (meta.drop_reason == DROP_NONE && meta.service_mode != SERVICE_MODE_NONE) {
            flow_key_hash.apply(meta);
            flow_dispatch.apply(hdr, meta, standard_metadata);
            if (meta.drop_reason == DROP_NONE) {
                backend_forward.apply(hdr, meta, standard_metadata);
            }
        }
        if (meta.drop_reason == DROP_NONE && meta.has_l4) {
            signalling.apply(hdr, meta, standard_metadata);
        }
        if (meta.drop_reason != DROP_NONE) {
            drops.count((bit<32>)meta.drop_reason);
            mark_to_drop(standard_metadata);
        }
    }
}

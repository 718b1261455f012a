// Ingress: validate, classify, dispatch, forward. No packet waits for the controller.
// The stages and their order are v1model's (p4src/v1model/ingress.p4).

control DispatcherIngress(inout tna_headers_t hdr,
                          inout ingress_metadata_t meta,
                          in ingress_intrinsic_metadata_t ig_intr_md,
                          in ingress_intrinsic_metadata_from_parser_t ig_prsr_md,
                          inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md,
                          inout ingress_intrinsic_metadata_for_tm_t ig_tm_md) {

    Counter<bit<64>, port_id_t>(PORT_COUNT, CounterType_t.PACKETS_AND_BYTES) port_in;
    Counter<bit<32>, bit<8>>(DROP_REASON_COUNT, CounterType_t.PACKETS) drops;  // by DropReason

    // The coarse clock's wrap count: the global timestamp wraps every 78 hours; this
    // register counts the wraps (its bits 47..26 went down), so the coarse clock does not.
    Register<timestamp_wraps_t, bit<1>>(1) clock;
    RegisterAction<timestamp_wraps_t, bit<1>, bit<32>>(clock) tick = {
        void apply(inout timestamp_wraps_t c, out bit<32> wraps) {
            if ((int<32>)(c.last_high - meta.timestamp_high) > 0) {
                c.wraps = c.wraps + 1;
            }
            c.last_high = meta.timestamp_high;
            wraps = c.wraps;
        }
    };

    PacketOutIngress() packet_out_io;
    Validation() validation;

    action copy_dropped_to_cpu() {
        ig_dprsr_md.mirror_type = MIRROR_TYPE_CPU;
        meta.mirror_session = CPU_MIRROR_SESSION;
        meta.cpu_mirror.setValid();
        meta.cpu_mirror.kind = BRIDGE_KIND_CPU;
        meta.cpu_mirror.ingress_port = ig_intr_md.ingress_port;
        meta.cpu_mirror._pad = 0;
        meta.cpu_mirror.reason = PacketInReason.DROPPED;
        meta.cpu_mirror.drop_reason = meta.drop_reason;
        meta.cpu_mirror.backend_id = 0;   // a dropped packet went nowhere (as on v1model)
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
        // The fine and coarse clocks (metadata.p4).
        meta.now = ig_prsr_md.global_tstamp[41:10];
        meta.timestamp_high = (bit<32>)ig_prsr_md.global_tstamp[47:26];
        bit<32> wraps = tick.execute(0);
        meta.now_coarse = wraps[9:0] ++ ig_prsr_md.global_tstamp[47:26];
        meta.stamp = meta.now | 1;
        meta.stamp_coarse = meta.now_coarse | 1;
        hdr.bridged.setValid();
        hdr.bridged.kind = BRIDGE_KIND_NORMAL;
        hdr.bridged.ingress_port = ig_intr_md.ingress_port;
        hdr.bridged.flooded = 0;
        hdr.bridged.check_ip_length = 0;
        hdr.bridged._pad = 0;
        hdr.bridged.ip_end = 0;
        hdr.bridged.added_bytes = 0;
        if (!meta.resubmitted) {
            port_in.count(ig_intr_md.ingress_port);   // once per packet, not per pass
        }

        bool packet_out_done;
        packet_out_io.apply(hdr, ig_tm_md, packet_out_done);
        if (!packet_out_done) {
            validation.apply(hdr, meta, ig_prsr_md);
            // Egress checks the length ingress cannot see.
            if (hdr.ipv4.isValid()) {
                hdr.bridged.check_ip_length = 1;
                hdr.bridged.ip_end = meta.l3_header_offset + hdr.ipv4.total_len;
            } else if (hdr.ipv6.isValid()) {
                hdr.bridged.check_ip_length = 1;
                hdr.bridged.ip_end = meta.l3_header_offset + IPV6_HEADER_BYTES + hdr.ipv6.payload_len;
            }
            if (meta.drop_reason == DropReason.NONE) {
                flow_key_extract.apply(hdr, meta.l4_src_port, meta.l4_dst_port, meta.flow);
                classifier.apply(hdr, meta, ig_intr_md, ig_tm_md);
            }
            if (meta.ipv4_checksum_bad && meta.service_mode != SERVICE_MODE_CAPTURE &&
                meta.drop_reason == DropReason.NONE) {
                // Servers would drop it anyway; a capture node wants what was on the wire.
                meta.drop_reason = DropReason.IPV4_BAD_CHECKSUM;
            }
            if (meta.drop_reason == DropReason.NONE && meta.service_mode != SERVICE_MODE_NONE) {
                flow_key_hash.apply(meta.service_mode == SERVICE_MODE_CAPTURE, meta.ring_by_client, meta.ring_mask,
                                    meta.flow, meta.flow_hash, meta.signature,
                                    meta.cache_set, meta.ring_slot);
                flow_dispatch.apply(hdr, meta, ig_intr_md, ig_dprsr_md);
                if (meta.drop_reason == DropReason.NONE) {
                    backend_forward.apply(hdr, meta, ig_intr_md, ig_dprsr_md, ig_tm_md);
                }
            }
            // A packet resubmitted to activate its entry is copied by its second pass only.
            if (meta.drop_reason == DropReason.NONE && meta.has_l4 && ig_dprsr_md.resubmit_type == 0) {
                signalling.apply(hdr, meta, ig_intr_md, ig_dprsr_md);
            }
            if (meta.drop_reason != DropReason.NONE) {
                drops.count((bit<8>)meta.drop_reason);
                drop_copies.apply();
                ig_dprsr_md.drop_ctl = 1;
            }
        }
    }
}

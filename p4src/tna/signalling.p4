// Signalling: packets of configured control protocols (SIP, RTSP, FTP, ...) are copied to
// the CPU, so the controller can learn the media and data flows they announce. The same
// `signalling` table and direct counter as on v1model.
//
// What TNA changes: the copy is an ingress mirror (session CPU_MIRROR_SESSION, which the
// controller points at the CPU port) whose mirror header carries the packet-in fields;
// egress turns it into the packet-in header. Tofino mirrors the packet as the ingress
// deparser emits it, so a copy of a dispatched packet carries its rewritten Ethernet
// header (DSR) or its outer IPv4 header (IP-in-IP), where BMv2 re-parses the original.
// The mirror header also carries the backend the original went to, for the packet-in's
// backend_id. A packet has one mirror copy at most: a capture packet truncated through
// its mirror session (backend_forward.p4) is not also copied to the CPU.

control Signalling(in tna_headers_t hdr,
                   inout ingress_metadata_t meta,
                   in ingress_intrinsic_metadata_t ig_intr_md,
                   inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {

    DirectCounter<bit<32>>(CounterType_t.PACKETS) signalling_clones;

    action clone_to_cpu() {
        signalling_clones.count();
        ig_dprsr_md.mirror_type = MIRROR_TYPE_CPU;
        meta.mirror_session = CPU_MIRROR_SESSION;
        meta.cpu_mirror.setValid();
        meta.cpu_mirror.kind = BRIDGE_KIND_CPU;
        meta.cpu_mirror.ingress_port = ig_intr_md.ingress_port;
        meta.cpu_mirror._pad = 0;
        meta.cpu_mirror.reason = PacketInReason.SIGNALLING;
        meta.cpu_mirror.drop_reason = DropReason.NONE;
        // The signalling flow's backend, which the controller gives the flows the packet
        // announces (its digest may come later than their first packets). 0 when the
        // packet has none: backend_id is zeroed by the parser and written only with
        // has_backend, and a service packet without a backend was dropped (NO_BACKEND)
        // before this table (v1model writes `has_backend ? backend_id : 0`).
        meta.cpu_mirror.backend_id = meta.backend_id;
    }

    // Filled by the controller: (protocol, port) of each signalling protocol, written twice,
    // once with the port as source and once as destination, so both directions are seen.
    table signalling {
        key = {
            meta.flow.protocol : exact @name("protocol");
            meta.l4_src_port : ternary @name("src_port");
            meta.l4_dst_port : ternary @name("dst_port");
        }
        actions = { clone_to_cpu; @defaultonly NoAction; }
        const default_action = NoAction();
        counters = signalling_clones;
        size = SIGNALLING_TABLE_SIZE;
    }

    apply {
        if (ig_dprsr_md.mirror_type == 0) {
            signalling.apply();
        }
    }
}

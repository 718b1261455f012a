// Signalling: packets of configured control protocols (SIP, RTSP, FTP, ...) are cloned
// to the CPU port, so the controller can learn the media and data flows they announce.
// The original is forwarded as usual; the clone carries a packet-in header (egress.p4).

control Signalling(in headers_t hdr,
                   inout local_metadata_t meta,
                   in standard_metadata_t standard_metadata) {

    direct_counter(CounterType.packets) signalling_clones;

    action clone_to_cpu() {
        meta.cpu_ingress_port = standard_metadata.ingress_port;
        // Where the switch sent the packet: the signalling flow's backend, which its
        // announced flows will get (a UDP flow's first packet is its digest's too, and
        // digests come in lists, up to ~100 ms later on BMv2).
        meta.cpu_backend_id = meta.has_backend ? meta.backend_id : 16w0;
        meta.cpu_reason = PacketInReason.SIGNALLING;
        clone_preserving_field_list(CloneType.I2E, CPU_CLONE_SESSION_ID, CLONE_FIELD_LIST_CPU);
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
        signalling.apply();
    }
}

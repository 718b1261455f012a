// Flow key: the 5-tuple in a family-neutral form, then its hashes (Hash extern, CRC-32).
// Capture mode sorts the two endpoints first, so both directions hash (and match) alike.
//
// What TNA changes: a comparison of two 128-bit addresses does not fit one gateway, so the
// sort compares them 32 bits at a time, most significant word first; and the cache stores
// a second, independent hash (CRC-32C) of the key in place of the key itself (a stateful
// ALU holds 64 bits: flow_dispatch.p4).

control FlowKeyExtract(in tna_headers_t hdr, in bit<16> l4_src_port, in bit<16> l4_dst_port,
                       out flow_key_t flow) {
    apply {
        if (hdr.ipv4.isValid()) {
            flow.src_addr = IPV4_MAPPED_PREFIX ++ hdr.ipv4.src_addr;
            flow.dst_addr = IPV4_MAPPED_PREFIX ++ hdr.ipv4.dst_addr;
            flow.protocol = hdr.ipv4.protocol;
        } else if (hdr.ipv6.isValid()) {
            flow.src_addr = hdr.ipv6.src_addr;
            flow.dst_addr = hdr.ipv6.dst_addr;
            flow.protocol = hdr.ipv6.next_hdr;
        } else {
            // Non-IP traffic (only dispatched in capture mode): the MAC pair.
            flow.src_addr = (flow_addr_t)hdr.ethernet.src_addr;
            flow.dst_addr = (flow_addr_t)hdr.ethernet.dst_addr;
            flow.protocol = 0;
        }
        flow.src_port = l4_src_port;
        flow.dst_port = l4_dst_port;
    }
}

control FlowKeyHash(in bool symmetric, in bool by_client, in bit<16> ring_mask, inout flow_key_t flow,
                    out bit<32> flow_hash, out bit<32> signature,
                    out bit<16> cache_set, out ring_slot_t ring_slot) {

    Hash<bit<32>>(HashAlgorithm_t.CRC32) key_hash;
    Hash<bit<32>>(HashAlgorithm_t.CRC32) client_hash;     // client affinity
    CRCPolynomial<bit<32>>(32w0x1EDC6F41, true, false, false, 32w0xFFFFFFFF, 32w0xFFFFFFFF) crc32c;
    Hash<bit<32>>(HashAlgorithm_t.CUSTOM, crc32c) signature_hash;

    action swap_endpoints() {
        flow_addr_t addr = flow.src_addr;
        flow.src_addr = flow.dst_addr;
        flow.dst_addr = addr;
        bit<16> port = flow.src_port;
        flow.src_port = flow.dst_port;
        flow.dst_port = port;
    }

    apply {
        if (symmetric) {
            // src > dst as (addr, port), one 32-bit word at a time.
            bool greater = false;
            if (flow.src_addr[127:96] != flow.dst_addr[127:96]) {
                greater = flow.src_addr[127:96] > flow.dst_addr[127:96];
            } else if (flow.src_addr[95:64] != flow.dst_addr[95:64]) {
                greater = flow.src_addr[95:64] > flow.dst_addr[95:64];
            } else if (flow.src_addr[63:32] != flow.dst_addr[63:32]) {
                greater = flow.src_addr[63:32] > flow.dst_addr[63:32];
            } else if (flow.src_addr[31:0] != flow.dst_addr[31:0]) {
                greater = flow.src_addr[31:0] > flow.dst_addr[31:0];
            } else {
                greater = flow.src_port > flow.dst_port;
            }
            if (greater) {
                swap_endpoints();
            }
        }
        flow_hash = key_hash.get({ flow.src_addr, flow.dst_addr, flow.protocol,
                                   flow.src_port, flow.dst_port });
        signature = signature_hash.get({ flow.src_addr, flow.dst_addr, flow.protocol,
                                         flow.src_port, flow.dst_port });
        cache_set = flow_hash[15:0] & (bit<16>)(FLOW_CACHE_SETS - 1);   // the cache set
        // The ring uses the high half, so it is independent of the cache set.
        if (by_client) {
            bit<32> client = client_hash.get({ flow.src_addr });
            ring_slot = client[31:16] & ring_mask;
        } else {
            ring_slot = flow_hash[31:16] & ring_mask;
        }
    }
}

// Flow key: the 5-tuple in a family-neutral form, then its CRC32 hash.
// Capture mode sorts the two endpoints first, so both directions hash (and match) alike.

control FlowKeyExtract(in headers_t hdr, in bit<16> l4_src_port, in bit<16> l4_dst_port,
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
                    out cache_index_t cache_index, out ring_slot_t ring_slot) {
    apply {
        if (symmetric) {
            if (flow.src_addr > flow.dst_addr ||
                (flow.src_addr == flow.dst_addr && flow.src_port > flow.dst_port)) {
                flow_addr_t addr = flow.src_addr;
                flow.src_addr = flow.dst_addr;
                flow.dst_addr = addr;
                bit<16> port = flow.src_port;
                flow.src_port = flow.dst_port;
                flow.dst_port = port;
            }
        }
        bit<32> flow_hash;
        hash(flow_hash, HashAlgorithm.crc32, 32w0,
             { flow.src_addr, flow.dst_addr, flow.protocol, flow.src_port, flow.dst_port },
             64w0x100000000);  // hash() returns base + (h % max): keep all 32 bits
        cache_index = flow_hash & (FLOW_CACHE_SETS - 1);   // the cache set
        // The ring uses the high half, so it is independent of the cache index.
        ring_slot = flow_hash[31:16] & ring_mask;
        if (by_client) {
            bit<32> client_hash;
            hash(client_hash, HashAlgorithm.crc32, 32w0, { flow.src_addr }, 64w0x100000000);
            ring_slot = client_hash[31:16] & ring_mask;
        }
    }
}

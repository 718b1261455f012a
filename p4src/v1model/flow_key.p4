// Flow key: the 5-tuple in a family-neutral form, then its CRC32 hash.
// Capture mode sorts the two endpoints first, so both directions hash (and match) alike.

control FlowKeyExtract(in headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (hdr.ipv4.isValid()) {
            meta.flow.src_addr = IPV4_MAPPED_PREFIX ++ hdr.ipv4.src_addr;
            meta.flow.dst_addr = IPV4_MAPPED_PREFIX ++ hdr.ipv4.dst_addr;
            meta.flow.protocol = hdr.ipv4.protocol;
        } else if (hdr.ipv6.isValid()) {
            meta.flow.src_addr = hdr.ipv6.src_addr;
            meta.flow.dst_addr = hdr.ipv6.dst_addr;
            meta.flow.protocol = hdr.ipv6.next_hdr;
        } else {
            // Non-IP traffic (only dispatched in capture mode): the MAC pair and EtherType.
            meta.flow.src_addr = (bit<128>)hdr.ethernet.src_addr;
            meta.flow.dst_addr = (bit<128>)hdr.ethernet.dst_addr;
            meta.flow.protocol = 0;
        }
        meta.flow.src_port = meta.l4_src_port;
        meta.flow.dst_port = meta.l4_dst_port;
    }
}

control FlowKeyHash(inout local_metadata_t meta) {
    apply {
        if (meta.service_mode == SERVICE_MODE_CAPTURE) {
            if (meta.flow.src_addr > meta.flow.dst_addr ||
                (meta.flow.src_addr == meta.flow.dst_addr &&
                 meta.flow.src_port > meta.flow.dst_port)) {
                bit<128> addr = meta.flow.src_addr;
                meta.flow.src_addr = meta.flow.dst_addr;
                meta.flow.dst_addr = addr;
                bit<16> port = meta.flow.src_port;
                meta.flow.src_port = meta.flow.dst_port;
                meta.flow.dst_port = port;
            }
        }
        hash(meta.flow_hash, HashAlgorithm.crc32, 32w0,
             { meta.flow.src_addr, meta.flow.dst_addr, meta.flow.protocol,
               meta.flow.src_port, meta.flow.dst_port },
             64w0x100000000);  // hash() returns base + (h % max): keep all 32 bits
        // A second, independent hash makes the cache signature: two flows sharing a slot
        // are told apart unless both hashes collide.
        bit<16> check;
        hash(check, HashAlgorithm.crc16, 16w0,
             { meta.flow.src_addr, meta.flow.dst_addr, meta.flow.protocol,
               meta.flow.src_port, meta.flow.dst_port },
             32w0x10000);
        meta.cache_index = meta.flow_hash & FLOW_CACHE_INDEX_MASK;
        meta.signature = check ++ meta.flow_hash[31:16];
        // The ring uses the high half, so it is independent of the cache index.
        meta.ring_slot = meta.flow_hash[31:16] & meta.ring_mask;
    }
}

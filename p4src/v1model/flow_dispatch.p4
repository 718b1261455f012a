// Flow dispatch: which backend gets this packet, keeping every flow on one backend.
//
//   1. `flows` hit: the backend the controller installed (the one the switch chose).
//   2. Miss: the flow cache slot at hash & FLOW_CACHE_INDEX_MASK decides:
//        same signature, live   -> the cached backend (the flow awaits its entry)
//        empty or expired       -> a new flow: the service's ring chooses, the slot keeps it
//        another live flow      -> a collision: the ring chooses, nothing is cached
//   3. Admission may refuse the packet (admission.p4) before any state is written.
//   4. The flow is confirmed (TCP: the caller's first ACK; otherwise its first packet):
//      one digest carries its key, backend and SYN->ACK RTT. Until its entry appears,
//      the digest is repeated every digest_retry_us. Half-open flows (SYN only) live and
//      expire in the cache alone, so a SYN flood never fills the `flows` table.

control FlowDispatch(inout headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t standard_metadata) {

    counter(FLOW_STATS_SIZE, CounterType.packets_and_bytes) flow_stats;
    counter(EVENT_COUNT, CounterType.packets) dispatch_events;

    // The flow cache. A slot is empty when its last_seen is 0. Only the data plane
    // reads and writes it; slots expire on their own after cache_timeout_us.
    register<bit<32>>(FLOW_CACHE_SIZE) cache_signature;
    register<backend_id_t>(FLOW_CACHE_SIZE) cache_backend;
    register<time_us_t>(FLOW_CACHE_SIZE) cache_last_seen_us;
    register<time_us_t>(FLOW_CACHE_SIZE) cache_syn_us;     // caller's last SYN, 0: none
    register<time_us_t>(FLOW_CACHE_SIZE) cache_digest_us;  // last digest sent, 0: not confirmed

    Admission() admission;

    action set_dispatch_settings(time_us_t cache_timeout_us, time_us_t digest_retry_us) {
        meta.cache_timeout_us = cache_timeout_us;
        meta.digest_retry_us = digest_retry_us;
    }

    // Written by the controller (default action only): the cache and digest timers.
    table dispatch_settings {
        actions = { set_dispatch_settings; }
        default_action = set_dispatch_settings(1000000, 500000);
        size = 1;
    }

    action set_flow_backend(backend_id_t backend_id, stats_slot_t stats_slot) {
        meta.backend_id = backend_id;
        meta.has_backend = true;
        flow_stats.count(stats_slot);
    }

    // Filled by the controller from digests: one entry per confirmed flow, carrying the
    // backend the switch chose. Idle entries time out and the controller deletes them.
    table flows {
        key = {
            meta.flow.src_addr : exact @name("src_addr");
            meta.flow.dst_addr : exact @name("dst_addr");
            meta.flow.protocol : exact @name("protocol");
            meta.flow.src_port : exact @name("src_port");
            meta.flow.dst_port : exact @name("dst_port");
        }
        actions = { set_flow_backend; @defaultonly NoAction; }
        const default_action = NoAction();
        size = FLOWS_TABLE_SIZE;
        support_timeout = true;
    }

    action set_ring_backend(backend_id_t backend_id) {
        meta.backend_id = backend_id;
        meta.has_backend = true;
    }

    // Filled by the controller from the service's policy: ring_size entries per service.
    table dispatch_ring {
        key = {
            meta.service_id : exact @name("service_id");
            meta.ring_slot : exact @name("slot");
        }
        actions = { set_ring_backend; @defaultonly NoAction; }
        const default_action = NoAction();
        size = DISPATCH_RING_TABLE_SIZE;
    }

    apply {
        dispatch_settings.apply();
        bool is_tcp = hdr.tcp.isValid();
        bit<8> syn_ack = meta.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
        bool caller_syn = is_tcp && syn_ack == TCP_FLAG_SYN;
        // The digest moment: TCP's caller ACK (no SYN), or any packet of another protocol.
        bool confirms = !is_tcp || syn_ack == TCP_FLAG_ACK;

        bit<32> slot_signature = 0;
        backend_id_t slot_backend = 0;
        time_us_t slot_last_seen = 0;

        if (meta.service_mode == SERVICE_MODE_CAPTURE && !meta.is_ip) {
            meta.flow_state = FLOW_STATE_STATELESS;
            dispatch_ring.apply();
        } else if (flows.apply().hit) {
            meta.flow_state = FLOW_STATE_INSTALLED;
        } else {
            cache_signature.read(slot_signature, meta.cache_index);
            cache_backend.read(slot_backend, meta.cache_index);
            cache_last_seen_us.read(slot_last_seen, meta.cache_index);
            bool live = slot_last_seen != 0 &&
                        meta.now_us - slot_last_seen < meta.cache_timeout_us;
            if (live && slot_signature == meta.signature) {
                meta.flow_state = FLOW_STATE_CACHED;
                meta.backend_id = slot_backend;
                meta.has_backend = true;
            } else {
                if (live) {
                    meta.flow_state = FLOW_STATE_COLLISION;
                } else {
                    meta.flow_state = FLOW_STATE_NEW;
                }
                dispatch_ring.apply();
            }
        }
        dispatch_events.count((bit<32>)meta.flow_state);  // EVENT_* of the path taken
        if (meta.ipv4_checksum_bad) {
            dispatch_events.count((bit<32>)EVENT_BAD_CHECKSUM_CAPTURED);
        }

        if (!meta.has_backend) {
            meta.drop_reason = DropReason.NO_BACKEND;
            return;
        }

        // SA2C's "new flow": one that has not started. A mid-stream TCP packet with no
        // state (e.g. after a cache expiry) belongs to an established connection.
        meta.is_new_flow =
            (meta.flow_state == FLOW_STATE_NEW && (!is_tcp || caller_syn)) ||
            (meta.flow_state == FLOW_STATE_COLLISION && caller_syn);
        admission.apply(meta.service_id, meta.is_new_flow, meta.drop_reason);
        if (meta.drop_reason != DropReason.NONE) {
            return;
        }

        // Commit: cache state and the digest.
        bool send_digest = false;
        time_us_t rtt_us = 0;
        if (meta.flow_state == FLOW_STATE_NEW) {
            cache_signature.write(meta.cache_index, meta.signature);
            cache_backend.write(meta.cache_index, meta.backend_id);
            cache_last_seen_us.write(meta.cache_index, meta.now_us);
            cache_syn_us.write(meta.cache_index, caller_syn ? meta.now_us : 48w0);
            cache_digest_us.write(meta.cache_index, confirms ? meta.now_us : 48w0);
            send_digest = confirms;
        } else if (meta.flow_state == FLOW_STATE_CACHED) {
            time_us_t syn_us;
            time_us_t digest_us;
            cache_syn_us.read(syn_us, meta.cache_index);
            cache_digest_us.read(digest_us, meta.cache_index);
            cache_last_seen_us.write(meta.cache_index, meta.now_us);
            if (caller_syn) {
                cache_syn_us.write(meta.cache_index, meta.now_us);
            }
            if (digest_us == 0) {
                if (confirms) {
                    send_digest = true;
                    if (syn_us != 0) {
                        rtt_us = meta.now_us - syn_us;
                        meta.digest.flags = DIGEST_FLAG_RTT_VALID;
                    }
                    cache_digest_us.write(meta.cache_index, meta.now_us);
                }
            } else if (meta.now_us - digest_us >= meta.digest_retry_us) {
                // Confirmed long ago and still no entry: the digest (or the write) was lost.
                send_digest = true;
                meta.digest.flags = DIGEST_FLAG_RETRY;
                dispatch_events.count((bit<32>)EVENT_DIGEST_RETRY);
                cache_digest_us.write(meta.cache_index, meta.now_us);
            }
        } else if (meta.flow_state == FLOW_STATE_COLLISION) {
            // Not cached: keep asking for an entry on every confirming packet, so the flow
            // leaves the ring's hands as soon as possible. The controller drops repeats.
            send_digest = confirms;
            meta.digest.flags = DIGEST_FLAG_COLLISION;
        }

        if (send_digest) {
            dispatch_events.count((bit<32>)EVENT_DIGEST);
            if (meta.service_mode == SERVICE_MODE_CAPTURE) {
                meta.digest.flags = meta.digest.flags | DIGEST_FLAG_SYMMETRIC;
            }
            meta.digest.src_addr = meta.flow.src_addr;
            meta.digest.dst_addr = meta.flow.dst_addr;
            meta.digest.protocol = meta.flow.protocol;
            meta.digest.src_port = meta.flow.src_port;
            meta.digest.dst_port = meta.flow.dst_port;
            meta.digest.service_id = meta.service_id;
            meta.digest.backend_id = meta.backend_id;
            meta.digest.cache_slot = meta.cache_index;
            meta.digest.timestamp_us = meta.now_us;
            meta.digest.tcp_flags = meta.tcp_flags;
            meta.digest.rtt_us = (bit<32>)rtt_us;
            digest<flow_digest_t>(1, meta.digest);
        }
    }
}

// Flow dispatch: which backend gets this packet, keeping every flow on one backend.
// The mechanism and its proof: docs/consistency.md.
//
//   1. `flows` hit on an activated entry: the backend the controller installed (the one the
//      switch chose). An entry is activated by its first hit, and only when its backend is
//      the one the flow's state gives that packet: an entry written from an earlier flow's
//      late digest (same key) never decides a later flow. An activated entry that has
//      decided no packet for the entries' idle timeout is deactivated again: its flow has
//      ended, and a packet that reuses the key starts another (the same check then applies).
//      Entry id 0: trusted, no check.
//   2. Miss: the flow's cache set (FLOW_CACHE_WAYS ways, exact keys) decides:
//        a live way holds this key   -> CACHED: its backend (the flow awaits its entry)
//        no way holds it, one free   -> NEW: decided at its ring entry, written to the way
//        no way holds it, none free  -> COLLISION: decided at its ring entry, stateless
//      A decision at a ring entry takes the entry's newest generation unless a stateless
//      flow used that entry less than cache_timeout_us ago: then the entry's applied
//      (older) backend, which that flow still depends on.
//      A NEW flow that matches `announced_flows` (a flow a session's signalling announced)
//      takes the session's backend instead of the ring's, unless its ring entry is held by
//      a stateless flow (that flow may be this one, met again now that its set has room).
//      Either way it is cached, so the announced entry never decides a packet twice.
//   3. Admission may refuse the packet (admission.p4) before any flow state is written.
//   4. The flow is confirmed (TCP: the caller's first ACK; otherwise its first packet):
//      one digest carries its key, backend and SYN->ACK RTT. Until its entry appears,
//      a cached flow's digest is repeated every digest_retry_us, a stateless flow's with
//      every confirming packet. Half-open flows (SYN only) live and expire in the cache
//      alone, so a SYN flood never fills the `flows` table.

#if FLOW_CACHE_WAYS != 4
#error "flow_dispatch.p4 probes four cache ways: change both together"
#endif

control FlowDispatch(inout headers_t hdr,
                     inout local_metadata_t meta,
                     inout standard_metadata_t standard_metadata) {

    counter(FLOW_STATS_SIZE, CounterType.packets_and_bytes) flow_stats;
    counter(EVENT_COUNT, CounterType.packets) dispatch_events;

    // The flow cache: way w of set s is index s * FLOW_CACHE_WAYS + w. A way is free when
    // its last_seen is 0 or cache_timeout_us old. Only the data plane reads and writes it.
    register<flow_addr_t>(FLOW_CACHE_SIZE) cache_src_addr;
    register<flow_addr_t>(FLOW_CACHE_SIZE) cache_dst_addr;
    register<bit<40>>(FLOW_CACHE_SIZE) cache_protocol_ports;   // protocol ++ src_port ++ dst_port
    register<backend_id_t>(FLOW_CACHE_SIZE) cache_backend;
    register<time_us_t>(FLOW_CACHE_SIZE) cache_last_seen_us;
    register<time_us_t>(FLOW_CACHE_SIZE) cache_syn_us;      // caller's last SYN, 0: none
    register<time_us_t>(FLOW_CACHE_SIZE) cache_digest_us;   // last digest sent, 0: not confirmed
    register<bit<1>>(FLOW_CACHE_SIZE) cache_announced;      // backend from announced_flows (digest flag)

    // Per `flows` statistics slot: the id of the entry activated there, and when it last
    // decided a packet (docs/consistency.md).
    register<bit<48>>(FLOW_STATS_SIZE) entry_activated;
    register<time_us_t>(FLOW_STATS_SIZE) entry_last_seen_us;

    // Per ring entry (ring_base + slot): the generation and backend stateless decisions
    // use, and when a stateless flow last depended on them.
    register<bit<32>>(DISPATCH_RING_TABLE_SIZE) ring_applied_generation;
    register<backend_id_t>(DISPATCH_RING_TABLE_SIZE) ring_applied_backend;
    register<time_us_t>(DISPATCH_RING_TABLE_SIZE) ring_stateless_seen_us;

    Admission() admission;

    // What the cache probe found.
    bit<40> key_rest;
    bool cache_hit = false;
    bit<32> hit_index = 0;
    bool has_free_way = false;
    bit<32> free_index = 0;

    // What the `flows` entry says.
    backend_id_t entry_backend = 0;
    stats_slot_t entry_stats_slot = 0;
    bit<48> entry_id = 0;

    // What the ring entry says.
    backend_id_t ring_backend = 0;
    bit<32> ring_generation = 0;
    bool ring_hit = false;

    action set_dispatch_settings(time_us_t cache_timeout_us, time_us_t digest_retry_us, time_us_t entry_idle_us) {
        meta.cache_timeout_us = cache_timeout_us;
        meta.digest_retry_us = digest_retry_us;
        meta.entry_idle_us = entry_idle_us;
    }

    // Written by the controller (default action only): the cache and digest timers, and the
    // idle timeout it gives `flows` entries.
    table dispatch_settings {
        actions = { set_dispatch_settings; }
        default_action = set_dispatch_settings(1000000, 500000, 0);
        size = 1;
    }

    action set_flow_backend(backend_id_t backend_id, stats_slot_t stats_slot, bit<48> id) {
        entry_backend = backend_id;
        entry_stats_slot = stats_slot;
        entry_id = id;
    }

    // Filled by the controller from digests: one entry per confirmed flow, carrying the
    // backend the switch chose and a unique id (0: trusted, e.g. written back after a
    // switch restart). Idle entries time out and the controller deletes them.
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

    action set_ring_backend(backend_id_t backend_id, bit<32> generation) {
        ring_backend = backend_id;
        ring_generation = generation;
        ring_hit = true;
    }

    // Filled by the controller from the service's policy: ring_size entries per service.
    // Each write of a slot carries a new generation (a counter that only grows).
    table dispatch_ring {
        key = {
            meta.service_id : exact @name("service_id");
            meta.ring_slot : exact @name("slot");
        }
        actions = { set_ring_backend; @defaultonly NoAction; }
        const default_action = NoAction();
        size = DISPATCH_RING_TABLE_SIZE;
    }

    backend_id_t announced_backend = 0;

    action set_announced_backend(backend_id_t backend_id) {
        announced_backend = backend_id;
    }

    // Filled by the controller from the signalling it parses (controller/sessions/): the
    // flows a session announced, before their first packet, with the backend of the
    // session's signalling flow. One end is often unknown (an SDP offer, FTP's PASV: the
    // client's port), so the key is ternary; each announced port is written twice, as
    // source and as destination (either end of a flow may be the announced one, and a
    // capture service's key is sorted). Consulted only by a flow's first packet (no entry,
    // no cache way); the flow's digest then makes its exact `flows` entry as usual. Entries
    // idle for the announcement's start time expire (docs/sessions.md).
    table announced_flows {
        key = {
            meta.flow.src_addr : ternary @name("src_addr");
            meta.flow.dst_addr : ternary @name("dst_addr");
            meta.flow.protocol : exact @name("protocol");
            meta.flow.src_port : ternary @name("src_port");
            meta.flow.dst_port : ternary @name("dst_port");
        }
        actions = { set_announced_backend; @defaultonly NoAction; }
        const default_action = NoAction();
        size = ANNOUNCED_FLOWS_TABLE_SIZE;
        support_timeout = true;
    }

    // One way of the flow's set: a live way with this exact key is a hit; the first way
    // that is empty or expired is where a new flow would go.
    action probe_way(bit<32> index) {
        flow_addr_t src;
        flow_addr_t dst;
        bit<40> rest;
        time_us_t seen;
        cache_src_addr.read(src, index);
        cache_dst_addr.read(dst, index);
        cache_protocol_ports.read(rest, index);
        cache_last_seen_us.read(seen, index);
        bool live = seen != 0 && meta.now_us - seen < meta.cache_timeout_us;
        bool same = src == meta.flow.src_addr && dst == meta.flow.dst_addr && rest == key_rest;
        if (live && same && !cache_hit) {
            cache_hit = true;
            hit_index = index;
        }
        if (!live && !has_free_way) {
            has_free_way = true;
            free_index = index;
        }
    }

    apply {
        dispatch_settings.apply();
        bool is_tcp = hdr.tcp.isValid();
        bit<8> syn_ack = meta.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
        bool caller_syn = is_tcp && syn_ack == TCP_FLAG_SYN;
        // The digest moment: TCP's caller ACK (no SYN), or any packet of another protocol.
        bool confirms = !is_tcp || syn_ack == TCP_FLAG_ACK;
        key_rest = meta.flow.protocol ++ meta.flow.src_port ++ meta.flow.dst_port;
        bit<32> set_base = meta.cache_index * FLOW_CACHE_WAYS;
        bool stateless = false;   // decided without flow state, and will be again
        bool entry_to_check = false;   // a `flows` entry not yet activated

        bool entered = false;
        if (meta.service_mode == SERVICE_MODE_CAPTURE && !meta.is_ip) {
            meta.flow_state = FLOW_STATE_STATELESS;   // non-IP: never cached
            stateless = true;
        } else if (flows.apply().hit) {
            if (entry_id == 0) {
                entered = true;
            } else {
                bit<48> activated;
                entry_activated.read(activated, entry_stats_slot);
                entered = activated == entry_id;
                if (entered && meta.entry_idle_us != 0) {
                    // Silent for the idle timeout: the flow it was activated for has ended
                    // (the controller is deleting it), and this packet starts a flow that
                    // reuses the key. Deactivated, it decides nothing until a packet's own
                    // state agrees with it, like an earlier flow's late entry.
                    time_us_t last_seen;
                    entry_last_seen_us.read(last_seen, entry_stats_slot);
                    if (meta.now_us - last_seen >= meta.entry_idle_us) {
                        entered = false;
                        entry_activated.write(entry_stats_slot, 0);
                        dispatch_events.count((bit<32>)EVENT_ENTRY_EXPIRED);
                    }
                }
                entry_to_check = !entered;
            }
        }
        if (entered) {
            meta.flow_state = FLOW_STATE_INSTALLED;
            meta.backend_id = entry_backend;
            meta.has_backend = true;
            flow_stats.count(entry_stats_slot);
            entry_last_seen_us.write(entry_stats_slot, meta.now_us);
        } else if (meta.flow_state != FLOW_STATE_STATELESS) {
            probe_way(set_base);
            probe_way(set_base + 1);
            probe_way(set_base + 2);
            probe_way(set_base + 3);
            if (cache_hit) {
                meta.flow_state = FLOW_STATE_CACHED;
                cache_backend.read(meta.backend_id, hit_index);
                meta.has_backend = true;
            } else if (has_free_way) {
                meta.flow_state = FLOW_STATE_NEW;
            } else {
                meta.flow_state = FLOW_STATE_COLLISION;
                stateless = true;
            }
        }

        // A decision without flow state: the ring entry, held at its applied generation
        // while a stateless flow depends on it (docs/consistency.md).
        bit<32> ring_index = meta.ring_base + (bit<32>)meta.ring_slot;
        bool held = false;
        if (meta.flow_state == FLOW_STATE_NEW || stateless) {
            time_us_t stateless_seen;
            ring_stateless_seen_us.read(stateless_seen, ring_index);
            held = stateless_seen != 0 && meta.now_us - stateless_seen < meta.cache_timeout_us;
        }

        // An announced flow's first packet: the session's backend. Only for a flow that gets
        // a cache way (so no later packet of it asks again) and whose ring entry no stateless
        // flow holds: a packet with no entry, no way and no such stamp has no earlier packet
        // within cache_timeout_us, so it starts a flow and any backend is its first
        // (docs/sessions.md has the argument).
        bool announced = false;
        if (meta.flow_state == FLOW_STATE_NEW || meta.flow_state == FLOW_STATE_COLLISION) {
            if (announced_flows.apply().hit) {
                if (meta.flow_state == FLOW_STATE_NEW && !held) {
                    announced = true;
                    meta.backend_id = announced_backend;
                    meta.has_backend = true;
                    dispatch_events.count((bit<32>)EVENT_ANNOUNCED_HIT);
                } else {
                    dispatch_events.count((bit<32>)EVENT_ANNOUNCED_UNUSED);
                }
            }
        }

        if ((meta.flow_state == FLOW_STATE_NEW && !announced) || stateless) {
            dispatch_ring.apply();
            if (ring_hit) {
                bit<32> applied_generation;
                ring_applied_generation.read(applied_generation, ring_index);
                if (applied_generation != ring_generation && held) {
                    ring_applied_backend.read(meta.backend_id, ring_index);
                    dispatch_events.count((bit<32>)EVENT_GENERATION_HELD);
                } else {
                    if (applied_generation != ring_generation) {
                        ring_applied_generation.write(ring_index, ring_generation);
                        ring_applied_backend.write(ring_index, ring_backend);
                        dispatch_events.count((bit<32>)EVENT_GENERATION_APPLIED);
                    }
                    meta.backend_id = ring_backend;
                }
                meta.has_backend = true;
            }
        }

        // An entry's first hit: it takes over only if it names the backend the flow's state
        // gave this packet; otherwise it came from an earlier flow with this key and is not
        // used (the flow stays on its cache way or ring entry).
        bool stale_entry = false;
        bool activated_now = false;
        if (entry_to_check && meta.has_backend) {
            if (meta.backend_id == entry_backend) {
                activated_now = true;
                entry_activated.write(entry_stats_slot, entry_id);
                entry_last_seen_us.write(entry_stats_slot, meta.now_us);
                flow_stats.count(entry_stats_slot);
                dispatch_events.count((bit<32>)EVENT_ENTRY_ACTIVATED);
            } else {
                stale_entry = true;
                dispatch_events.count((bit<32>)EVENT_ENTRY_STALE);
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

        // Commit: flow state and the digest.
        if (stateless) {
            ring_stateless_seen_us.write(ring_index, meta.now_us);
        }
        bool send_digest = false;
        bit<48> rtt_us = 0;
        if (meta.flow_state == FLOW_STATE_NEW) {
            cache_src_addr.write(free_index, meta.flow.src_addr);
            cache_dst_addr.write(free_index, meta.flow.dst_addr);
            cache_protocol_ports.write(free_index, key_rest);
            cache_backend.write(free_index, meta.backend_id);
            cache_last_seen_us.write(free_index, meta.now_us);
            cache_syn_us.write(free_index, caller_syn ? meta.now_us : 48w0);
            cache_digest_us.write(free_index, confirms ? meta.now_us : 48w0);
            cache_announced.write(free_index, announced ? 1w1 : 1w0);
            meta.digest.cache_slot = free_index;
            send_digest = confirms;
            if (announced) {
                meta.digest.flags = DIGEST_FLAG_ANNOUNCED;
            }
        } else if (meta.flow_state == FLOW_STATE_CACHED) {
            time_us_t syn_us;
            time_us_t digest_us;
            cache_syn_us.read(syn_us, hit_index);
            cache_digest_us.read(digest_us, hit_index);
            cache_last_seen_us.write(hit_index, meta.now_us);
            meta.digest.cache_slot = hit_index;
            if (caller_syn) {
                cache_syn_us.write(hit_index, meta.now_us);
            }
            bit<1> was_announced;
            cache_announced.read(was_announced, hit_index);
            if (was_announced == 1) {
                meta.digest.flags = DIGEST_FLAG_ANNOUNCED;
            }
            if (digest_us == 0) {
                if (confirms) {
                    send_digest = true;
                    if (syn_us != 0) {
                        rtt_us = meta.now_us - syn_us;
                        meta.digest.flags = meta.digest.flags | DIGEST_FLAG_RTT_VALID;
                    }
                    cache_digest_us.write(hit_index, meta.now_us);
                }
            } else if (meta.now_us - digest_us >= meta.digest_retry_us) {
                // Confirmed long ago and still no entry: the digest (or the write) was lost.
                send_digest = true;
                meta.digest.flags = meta.digest.flags | DIGEST_FLAG_RETRY;
                dispatch_events.count((bit<32>)EVENT_DIGEST_RETRY);
                cache_digest_us.write(hit_index, meta.now_us);
            }
        } else if (meta.flow_state == FLOW_STATE_COLLISION) {
            // Not cached: ask for an entry on every confirming packet, so the flow leaves
            // the ring's hands (and stops holding its ring entry) soon. Repeats are dropped
            // by the controller.
            send_digest = confirms;
            meta.digest.flags = DIGEST_FLAG_COLLISION;
            meta.digest.cache_slot = NO_CACHE_SLOT;
        }

        if (stale_entry) {
            // Told to the controller with the flow's digests (it counts them; the flow keeps
            // running on its own state, and the entry is never rewritten under it).
            meta.digest.flags = meta.digest.flags | DIGEST_FLAG_STALE_ENTRY;
        }
        if (activated_now && (entry_id & ENTRY_ID_REPORT_ACTIVATION) != 0) {
            // The entry's id asked to hear of its activation: several switches replicate a
            // flow's entry only once its home has taken it over (docs/multiswitch.md, rule 3).
            // Once per entry: a later packet finds it activated.
            send_digest = true;
            meta.digest.flags = meta.digest.flags | DIGEST_FLAG_ACTIVATED;
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
            meta.digest.timestamp_us = meta.now_us;
            meta.digest.tcp_flags = meta.tcp_flags;
            meta.digest.rtt_us = (bit<32>)rtt_us;
            digest<flow_digest_t>(1, meta.digest);
        }
    }
}

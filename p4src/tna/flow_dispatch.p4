// Flow dispatch on TNA: the mechanism of p4src/v1model/flow_dispatch.p4 and
// docs/consistency.md, in Tofino's terms. What changes, and why:
//
// * One access per register per packet, through a RegisterAction (one stateful ALU of at
//   most 2 x 32 bits). v1model reads a way, decides, and writes later; here each access
//   reads, decides and writes at once, so every decision a write depends on is made first:
//   the admission verdict (admission.p4) before the probe, the ring decision before the
//   way's backend is written.
// * A cache way stores a 32-bit signature (CRC-32C of the key, never 0; 0 is an empty
//   way) and the time it was last seen, in one 64-bit register per way: the whole
//   296-bit key does not fit a stateful ALU. Two flows of one set with the same signature
//   (odds 2^-32 per pair) would share a way; the `flows` entry still matches the whole key.
// * The four ways are four registers indexed by the cache set, probed one after the other;
//   the first free way is claimed in the probe itself. If the flow already holds a later
//   way (an earlier way expired after it was cached), the claim makes a duplicate; the
//   highest-numbered hit decides, and the duplicate, refreshed by the same packets,
//   expires with the original. Backend, SYN time and digest time live in three registers
//   indexed by set * 4 + way, accessed once, for the flow's way only.
// * The `flows` entry's activation (entry_activated) is read before the cache and must be
//   written after the decision: a second access. The first hit of an entry not yet
//   activated is decided as a miss; if the decision names the entry's backend, the packet
//   is resubmitted and its second pass writes the activation and forwards by the entry.
//   That is one extra pass per `flows` entry, once.
// * A counter takes one access per packet: v1model's dispatch_events (counted up to four
//   times per packet) is split into counters indexed by the same EVENT_* numbers:
//   dispatch_events (the path: 1-5), digest_events (6, 7: a repeat counts at 7 only),
//   checksum_events (8), generation_events (9, 10), entry_events (11, 12).
// * Time is the global timestamp in units of 1,024 ns, 32 bits (metadata.p4). The controller's timers (written in microseconds) are read in those
//   units: 2.4 % longer than written.

#if FLOW_CACHE_WAYS != 4
#error "flow_dispatch.p4 probes four cache ways: change both together"
#endif

// A cache way: signature and last-seen time.
struct cache_way_t {
    bit<32> signature;
    bit<32> seen;
}

// A ring entry's applied generation and the backend it had.
struct ring_applied_t {
    bit<32> generation;
    bit<32> backend;
}

// What a way probe returns.
const bit<8> WAY_BUSY = 0;      // live, another flow
const bit<8> WAY_HIT = 1;       // live, this flow's signature: refreshed (unless read-only)
const bit<8> WAY_CLAIMED = 2;   // free, and now this flow's
const bit<8> WAY_FREE = 3;      // free, not claimed (a claim was not allowed)

// What the ring's applied-generation access returns, above the backend's 16 bits.
const bit<32> RING_HELD = 32w0x10000;      // an older generation's backend, held
const bit<32> RING_APPLIED = 32w0x20000;   // a new generation taken

// What a cached way's digest-time access returns.
const bit<8> DIGEST_NONE = 0;
const bit<8> DIGEST_FIRST = 1;
const bit<8> DIGEST_REPEAT = 2;

// One way: its register and its three probes (claim a free way; refresh a hit only;
// read only). A way is live when its signature is set and it was seen less than the
// cache timeout ago.
#define CACHE_WAY(W)                                                                       \
    Register<cache_way_t, bit<16>>(FLOW_CACHE_SETS) cache_way_##W;                         \
    RegisterAction<cache_way_t, bit<16>, bit<8>>(cache_way_##W) probe_claim_##W = {        \
        void apply(inout cache_way_t way, out bit<8> status) {                             \
            bool live = way.signature != 0 && meta.now - way.seen < meta.cache_timeout;    \
            if (live && way.signature == meta.signature) {                                 \
                way.seen = meta.now;                                                       \
                status = WAY_HIT;                                                          \
            } else if (!live) {                                                            \
                way.signature = meta.signature;                                            \
                way.seen = meta.now;                                                       \
                status = WAY_CLAIMED;                                                      \
            } else {                                                                       \
                status = WAY_BUSY;                                                         \
            }                                                                              \
        }                                                                                  \
    };                                                                                     \
    RegisterAction<cache_way_t, bit<16>, bit<8>>(cache_way_##W) probe_refresh_##W = {      \
        void apply(inout cache_way_t way, out bit<8> status) {                             \
            bool live = way.signature != 0 && meta.now - way.seen < meta.cache_timeout;    \
            if (live && way.signature == meta.signature) {                                 \
                way.seen = meta.now;                                                       \
                status = WAY_HIT;                                                          \
            } else if (!live) {                                                            \
                status = WAY_FREE;                                                         \
            } else {                                                                       \
                status = WAY_BUSY;                                                         \
            }                                                                              \
        }                                                                                  \
    };                                                                                     \
    RegisterAction<cache_way_t, bit<16>, bit<8>>(cache_way_##W) probe_read_##W = {         \
        void apply(inout cache_way_t way, out bit<8> status) {                             \
            bool live = way.signature != 0 && meta.now - way.seen < meta.cache_timeout;    \
            if (live && way.signature == meta.signature) {                                 \
                status = WAY_HIT;                                                          \
            } else if (!live) {                                                            \
                status = WAY_FREE;                                                         \
            } else {                                                                       \
                status = WAY_BUSY;                                                         \
            }                                                                              \
        }                                                                                  \
    }

// Probe way W: claim only while no way has hit or been claimed. The highest hit decides.
#define PROBE_WAY(W)                                                                       \
    if (claim_allowed && !cache_hit && !claimed) {                                         \
        status = probe_claim_##W.execute(meta.cache_set);                                  \
    } else if (refresh_allowed) {                                                          \
        status = probe_refresh_##W.execute(meta.cache_set);                                \
    } else {                                                                               \
        status = probe_read_##W.execute(meta.cache_set);                                   \
    }                                                                                      \
    if (status == WAY_HIT) {                                                               \
        cache_hit = true;                                                                  \
        hit_way = W;                                                                       \
    } else if (status == WAY_CLAIMED) {                                                    \
        claimed = true;                                                                    \
        claimed_way = W;                                                                   \
    } else if (status == WAY_FREE) {                                                       \
        has_free_way = true;                                                               \
    }

control FlowDispatch(inout tna_headers_t hdr,
                     inout ingress_metadata_t meta,
                     in ingress_intrinsic_metadata_t ig_intr_md,
                     inout ingress_intrinsic_metadata_for_deparser_t ig_dprsr_md) {

    Counter<bit<64>, stats_slot_t>(FLOW_STATS_SIZE, CounterType_t.PACKETS_AND_BYTES) flow_stats;
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) dispatch_events;
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) digest_events;
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) checksum_events;
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) generation_events;
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) entry_events;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) flow_entry_traffic;

    Admission() admission;

    // What the `flows` entry says.
    backend_id_t entry_backend = 0;
    stats_slot_t entry_stats_slot = 0;
    bit<48> entry_id = 0;

    // What the ring entry says.
    backend_id_t ring_backend = 0;
    bit<32> ring_generation = 0;
    bool ring_hit = false;

    // ---- Timers ------------------------------------------------------------------
    action set_dispatch_settings(time_us_t cache_timeout_us, time_us_t digest_retry_us) {
        meta.cache_timeout = (tna_time_t)cache_timeout_us;
        meta.digest_retry = (tna_time_t)digest_retry_us;
    }

    // Written by the controller (default action only): the cache and digest timers.
    table dispatch_settings {
        actions = { set_dispatch_settings; }
        default_action = set_dispatch_settings(1000000, 500000);
        size = 1;
    }

    // ---- `flows` and its activation ----------------------------------------------
    action set_flow_backend(backend_id_t backend_id, stats_slot_t stats_slot, bit<48> id) {
        entry_backend = backend_id;
        entry_stats_slot = stats_slot;
        entry_id = id;
        flow_entry_traffic.count();
    }

    // Filled by the controller from digests: one entry per confirmed flow, carrying the
    // backend the switch chose and a unique id (0: trusted). The driver reports idle
    // entries (idle_timeout) and the controller deletes them. Its direct counter counts
    // every hit, activated or not; flow_stats counts the packets the entry decided.
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
        counters = flow_entry_traffic;
        idle_timeout = true;
    }

    // Per statistics slot: the low 32 bits of the id of the entry activated there.
    Register<bit<32>, stats_slot_t>(FLOW_STATS_SIZE, 0) entry_activated;
    RegisterAction<bit<32>, stats_slot_t, bool>(entry_activated) is_activated = {
        void apply(inout bit<32> activated, out bool same) {
            same = activated == entry_id[31:0];
        }
    };
    RegisterAction<bit<32>, stats_slot_t, bool>(entry_activated) activate = {
        void apply(inout bit<32> activated, out bool same) {
            activated = entry_id[31:0];
            same = true;
        }
    };

    // ---- The ring ------------------------------------------------------------------
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

    // Per ring entry: when a stateless flow last depended on it (0: never).
    Register<tna_time_t, bit<32>>(DISPATCH_RING_TABLE_SIZE, 0) ring_stateless_seen;
    RegisterAction<tna_time_t, bit<32>, tna_time_t>(ring_stateless_seen) stamp_stateless = {
        void apply(inout tna_time_t seen, out tna_time_t before) {
            before = seen;
            seen = meta.now | 1;   // never 0 once stamped
        }
    };
    RegisterAction<tna_time_t, bit<32>, tna_time_t>(ring_stateless_seen) read_stateless = {
        void apply(inout tna_time_t seen, out tna_time_t before) {
            before = seen;
        }
    };

    // Per ring entry: the generation stateless decisions use, and its backend.
    Register<ring_applied_t, bit<32>>(DISPATCH_RING_TABLE_SIZE) ring_applied;
    RegisterAction<ring_applied_t, bit<32>, bit<32>>(ring_applied) take_newest = {
        void apply(inout ring_applied_t applied, out bit<32> decision) {
            if (applied.generation != ring_generation) {
                applied.generation = ring_generation;
                applied.backend = (bit<32>)ring_backend;
                decision = (bit<32>)ring_backend | RING_APPLIED;
            } else {
                decision = (bit<32>)ring_backend;
            }
        }
    };
    RegisterAction<ring_applied_t, bit<32>, bit<32>>(ring_applied) take_held = {
        void apply(inout ring_applied_t applied, out bit<32> decision) {
            if (applied.generation != ring_generation) {
                decision = applied.backend | RING_HELD;
            } else {
                decision = (bit<32>)ring_backend;
            }
        }
    };

    // ---- The cache -----------------------------------------------------------------
    CACHE_WAY(0);
    CACHE_WAY(1);
    CACHE_WAY(2);
    CACHE_WAY(3);

    // Per way (set * FLOW_CACHE_WAYS + way): backend, caller's last SYN, last digest.
    Register<backend_id_t, cache_index_t>(FLOW_CACHE_SIZE) cache_backend;
    RegisterAction<backend_id_t, cache_index_t, backend_id_t>(cache_backend) read_backend = {
        void apply(inout backend_id_t backend, out backend_id_t result) {
            result = backend;
        }
    };
    RegisterAction<backend_id_t, cache_index_t, backend_id_t>(cache_backend) write_backend = {
        void apply(inout backend_id_t backend, out backend_id_t result) {
            backend = meta.backend_id;
            result = meta.backend_id;
        }
    };

    Register<tna_time_t, cache_index_t>(FLOW_CACHE_SIZE) cache_syn;
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_start = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            syn = meta.now | 1;
            before = 0;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_clear = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            syn = 0;
            before = 0;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_restart = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            before = syn;
            syn = meta.now | 1;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_read = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            before = syn;
        }
    };

    Register<tna_time_t, cache_index_t>(FLOW_CACHE_SIZE) cache_digest;
    RegisterAction<tna_time_t, cache_index_t, bit<8>>(cache_digest) digest_start = {
        void apply(inout tna_time_t sent, out bit<8> verdict) {
            sent = meta.now | 1;
            verdict = DIGEST_FIRST;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, bit<8>>(cache_digest) digest_clear = {
        void apply(inout tna_time_t sent, out bit<8> verdict) {
            sent = 0;
            verdict = DIGEST_NONE;
        }
    };
    // A cached flow's confirming packet: the first digest, or a repeat once due.
    RegisterAction<tna_time_t, cache_index_t, bit<8>>(cache_digest) digest_confirming = {
        void apply(inout tna_time_t sent, out bit<8> verdict) {
            if (sent == 0) {
                sent = meta.now | 1;
                verdict = DIGEST_FIRST;
            } else if (meta.now - sent >= meta.digest_retry) {
                sent = meta.now | 1;
                verdict = DIGEST_REPEAT;
            } else {
                verdict = DIGEST_NONE;
            }
        }
    };
    // Any other packet of a cached flow: a repeat once due, if the flow was confirmed.
    RegisterAction<tna_time_t, cache_index_t, bit<8>>(cache_digest) digest_other = {
        void apply(inout tna_time_t sent, out bit<8> verdict) {
            if (sent != 0 && meta.now - sent >= meta.digest_retry) {
                sent = meta.now | 1;
                verdict = DIGEST_REPEAT;
            } else {
                verdict = DIGEST_NONE;
            }
        }
    };

    apply {
        dispatch_settings.apply();
        bool is_tcp = hdr.tcp.isValid();
        bit<8> syn_ack = meta.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
        bool caller_syn = is_tcp && syn_ack == TCP_FLAG_SYN;
        bool confirms = !is_tcp || syn_ack == TCP_FLAG_ACK;
        // The signature is never 0: 0 marks an empty way.
        meta.signature = meta.signature | 1;

        // ---- `flows` (one apply for both passes) -----------------------------------------
        bool stateless = false;
        bool entered = false;
        bool entry_to_check = false;
        bool flows_hit = false;
        if (meta.service_mode == SERVICE_MODE_CAPTURE && !meta.is_ip) {
            meta.flow_state = FLOW_STATE_STATELESS;   // non-IP: never cached
            stateless = true;
        } else {
            flows_hit = flows.apply().hit;
        }

        // ---- Second pass of an entry's first hit: activate it, forward by it. --------
        if (meta.resubmitted) {
            if (flows_hit) {
                activate.execute(entry_stats_slot);
                flow_stats.count(entry_stats_slot);
                entry_events.count(EVENT_ENTRY_ACTIVATED);
                meta.flow_state = FLOW_STATE_INSTALLED;
                meta.backend_id = entry_backend;
                meta.has_backend = true;
            } else {
                meta.drop_reason = DropReason.NO_BACKEND;   // deleted between the passes
            }
            return;
        }
        if (flows_hit) {
            if (entry_id == 0) {
                entered = true;
            } else {
                entered = is_activated.execute(entry_stats_slot);
                entry_to_check = !entered;
            }
        }

        // ---- Admission, both ways, before anything is written. ----------------------
        bool refuse_new;
        bool refuse_established;
        admission.apply(meta.service_id, refuse_new, refuse_established);
        bool new_if_unseen = !is_tcp || caller_syn;   // a NEW flow would be SA2C-new
        bool claim_allowed = new_if_unseen ? !refuse_new : !refuse_established;
        bool refresh_allowed = !refuse_established;

        // ---- The cache ---------------------------------------------------------------
        bool cache_hit = false;
        bool claimed = false;
        bool has_free_way = false;
        bit<32> hit_way = 0;
        bit<32> claimed_way = 0;
        bit<8> status;
        if (entered) {
            meta.flow_state = FLOW_STATE_INSTALLED;
            meta.backend_id = entry_backend;
            meta.has_backend = true;
            flow_stats.count(entry_stats_slot);
        } else if (!stateless) {
            PROBE_WAY(0)
            PROBE_WAY(1)
            PROBE_WAY(2)
            PROBE_WAY(3)
            if (cache_hit) {
                meta.flow_state = FLOW_STATE_CACHED;
            } else if (claimed || has_free_way) {
                meta.flow_state = FLOW_STATE_NEW;
            } else {
                meta.flow_state = FLOW_STATE_COLLISION;
                stateless = true;
            }
        }
        cache_index_t way_index = ((bit<32>)meta.cache_set << 2) | (cache_hit ? hit_way : claimed_way);

        // SA2C's verdict for this packet, now that its state is known.
        meta.is_new_flow =
            (meta.flow_state == FLOW_STATE_NEW && new_if_unseen) ||
            (meta.flow_state == FLOW_STATE_COLLISION && caller_syn);
        bool refused = meta.flow_state != FLOW_STATE_INSTALLED &&
                       (meta.is_new_flow ? refuse_new : refuse_established);

        // ---- A decision without flow state: the ring entry and its generations. ---------
        bit<32> ring_index = meta.ring_base + (bit<32>)meta.ring_slot;
        if (meta.flow_state == FLOW_STATE_NEW || stateless) {
            dispatch_ring.apply();
            if (ring_hit) {
                tna_time_t stateless_seen;
                if (stateless && !refused) {
                    stateless_seen = stamp_stateless.execute(ring_index);
                } else {
                    stateless_seen = read_stateless.execute(ring_index);
                }
                bool held = stateless_seen != 0 &&
                            meta.now - stateless_seen < meta.cache_timeout;
                bit<32> decision;
                if (held) {
                    decision = take_held.execute(ring_index);
                } else {
                    decision = take_newest.execute(ring_index);
                }
                meta.backend_id = decision[15:0];
                meta.has_backend = true;
                if (decision & RING_HELD != 0) {
                    generation_events.count(EVENT_GENERATION_HELD);
                } else if (decision & RING_APPLIED != 0) {
                    generation_events.count(EVENT_GENERATION_APPLIED);
                }
            }
        }

        // ---- The flow's way: its backend. -----------------------------------------------
        if (meta.flow_state == FLOW_STATE_CACHED) {
            meta.backend_id = read_backend.execute(way_index);
            meta.has_backend = true;
        } else if (meta.flow_state == FLOW_STATE_NEW && claimed && meta.has_backend) {
            write_backend.execute(way_index);
        }

        // ---- An entry's first hit: activate it (second pass) or report it stale. --------
        bool stale_entry = false;
        if (entry_to_check && meta.has_backend && !refused) {
            if (meta.backend_id == entry_backend) {
                ig_dprsr_md.resubmit_type = RESUBMIT_TYPE_ACTIVATE;
                meta.resubmit.setValid();
                meta.resubmit.activate = 1;
                meta.resubmit._pad = 0;
            } else {
                stale_entry = true;
                entry_events.count(EVENT_ENTRY_STALE);
            }
        }

        dispatch_events.count(meta.flow_state);   // EVENT_* of the path taken
        if (meta.ipv4_checksum_bad) {
            checksum_events.count(EVENT_BAD_CHECKSUM_CAPTURED);
        }

        if (!meta.has_backend) {
            meta.drop_reason = DropReason.NO_BACKEND;
            return;
        }
        if (refused) {
            meta.drop_reason = meta.is_new_flow ? DropReason.ADMISSION_NEW
                                                : DropReason.ADMISSION_ESTABLISHED;
            return;
        }

        // ---- Commit: SYN and digest times, and the digest. ------------------------------
        bool send_digest = false;
        tna_time_t syn_before = 0;
        bit<8> digest_verdict = DIGEST_NONE;
        if (meta.flow_state == FLOW_STATE_NEW && claimed) {
            if (caller_syn) {
                syn_start.execute(way_index);
            } else {
                syn_clear.execute(way_index);
            }
            if (confirms) {
                digest_verdict = digest_start.execute(way_index);
            } else {
                digest_clear.execute(way_index);
            }
        } else if (meta.flow_state == FLOW_STATE_CACHED) {
            if (caller_syn) {
                syn_before = syn_restart.execute(way_index);
            } else {
                syn_before = syn_read.execute(way_index);
            }
            if (confirms) {
                digest_verdict = digest_confirming.execute(way_index);
            } else {
                digest_verdict = digest_other.execute(way_index);
            }
        }
        tna_time_t rtt = 0;
        if (digest_verdict == DIGEST_FIRST) {
            send_digest = true;
            if (meta.flow_state == FLOW_STATE_CACHED && syn_before != 0) {
                rtt = meta.now - syn_before;
                meta.digest.flags = DIGEST_FLAG_RTT_VALID;
            }
        } else if (digest_verdict == DIGEST_REPEAT) {
            send_digest = true;
            meta.digest.flags = DIGEST_FLAG_RETRY;
        } else if (meta.flow_state == FLOW_STATE_COLLISION) {
            // Not cached: ask for an entry on every confirming packet (docs/dataplane.md).
            send_digest = confirms;
            meta.digest.flags = DIGEST_FLAG_COLLISION;
        }
        if (stale_entry) {
            meta.digest.flags = meta.digest.flags | DIGEST_FLAG_STALE_ENTRY;
        }
        if (send_digest) {
            digest_events.count(digest_verdict == DIGEST_REPEAT ? EVENT_DIGEST_RETRY : EVENT_DIGEST);
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
            meta.digest.tcp_flags = meta.tcp_flags;
            // 1,024 ns units to microseconds: x * 1.024 ~ x + x/64 + x/128 (0.06 % low).
            meta.digest.rtt_us = rtt + (rtt >> 6) + (rtt >> 7);
            ig_dprsr_md.digest_type = DIGEST_TYPE_NEW_FLOW;
        }
    }
}

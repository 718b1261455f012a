// Flow dispatch on TNA: the mechanism of p4src/v1model/flow_dispatch.p4 and
// docs/consistency.md, in Tofino's terms. What changes, and why:
//
// * One access per register per packet, through a RegisterAction (one stateful ALU of at
//   most 2 x 32 bits). v1model reads a way, decides, and writes later; here each access
//   reads, decides and writes at once, so every decision a write depends on is made first:
//   the admission verdict (admission.p4) before the probe, the ring decision before the
//   way's backend is written.
// * A cache way stores a 32-bit signature (CRC-32C of the key made odd, so never 0: 0 is
//   an empty way) and the time it was last seen, in one 64-bit register per way: the whole
//   296-bit key does not fit a stateful ALU. Two flows of one set with the same signature
//   (odds 2^-32 per pair) would share a way; the `flows` entry still matches the whole key.
// * The four ways are four registers indexed by the cache set, probed one after the other;
//   the first free way is claimed in the probe itself. If the flow already holds a later
//   way (an earlier way expired after it was cached), the claim makes a duplicate; the
//   highest-numbered hit decides, and the duplicate, refreshed by the same packets,
//   expires with the original. Backend, SYN time and digest time live in three registers
//   indexed by set * 4 + way, accessed once, for the flow's way only.
// * The new-flow meter takes its token before the probe too: caller SYNs only (admission.p4).
// * The `flows` entry's activation (entry_activated) is read before the cache and must be
//   written after the decision: a second access. The first hit of an entry not yet
//   activated is decided as a miss; if the decision names the entry's backend, the packet
//   is resubmitted and its second pass writes the activation and forwards by the entry.
//   That is one extra pass per `flows` entry, once.
// * A counter takes one access per packet: v1model's dispatch_events (counted several
//   times per packet) is split into counters indexed by the same EVENT_* numbers:
//   dispatch_events (the path: 1-5), digest_events (6, 7: a repeat counts at 7 only),
//   checksum_events (8), generation_events (9, 10), entry_events (11, 12, 15),
//   announced_events (13, 14).
// * `announced_flows` (issue 13's session affinity, docs/sessions.md) decides as on v1model:
//   a NEW flow whose ring entry is not held takes the announced backend. The held check
//   (ring_stateless_seen) is therefore made for every NEW flow, not only when the ring entry
//   exists, and the ring's generation register is taken only when the ring decides. That a
//   way's backend came from an announcement is one bit per way in its own register
//   (cache_announced), accessed once where the way's backend is: set or cleared when the
//   way is written, read when it is hit. A spare bit in an existing register would save
//   the stateful ALU, but there is none: the backend is a full 16-bit id, and a zero
//   signature, SYN or digest time already means "none".
// * Each RegisterAction is written for one stateful ALU: at most two comparisons, each of
//   a register half with one PHV value ("seen - live_after > 0", not "now - seen <
//   timeout"), at most two values computed, and one output: the register's old value, or
//   the 4-bit predicate (which of the two comparisons held) that the MAU then decodes.
// * Time: a coarse clock (67 ms units) for liveness, holds and digest repeats, a fine one
//   (1,024 ns) for RTT samples (metadata.p4); the controller writes the timers in coarse
//   units (controller/p4runtime/targets.py).

#if FLOW_CACHE_WAYS != 4
#error "flow_dispatch.p4 probes four cache ways: change both together"
#endif

// A cache way: signature and last-seen time.
struct cache_way_t {
    bit<32> signature;
    bit<32> seen;
}

// A ring entry's applied generation and the backend it had.
struct entry_state_t {
    bit<32> id;     // the low 32 bits of the id of the entry activated at this stats slot
    bit<32> seen;   // when that entry last decided a packet (coarse clock, never 0)
}

struct ring_applied_t {
    bit<32> generation;
    bit<32> backend;
}

// A RegisterAction's predicate(cmplo, cmphi) output: one bit for the combination of the
// two comparisons that held, bit (cmphi ? 2 : 0) + (cmplo ? 1 : 0).
const bit<4> PRED_NONE = 4w0x1;      // neither
const bit<4> PRED_LO = 4w0x2;        // cmplo only
const bit<4> PRED_HI = 4w0x4;        // cmphi only
const bit<4> PRED_BOTH = 4w0x8;      // both
const bit<4> PRED_LO_ANY = 4w0xA;    // cmplo, whatever cmphi
const bit<4> PRED_NOT_LO = 4w0x5;    // not cmplo, whatever cmphi

// One way: its register and its three probes (claim a free way; refresh a hit only;
// read only). cmplo: the way is live (seen after live_after); cmphi: it holds this
// flow's signature. An empty way (all zero) is not live, except in the first cache timeout
// after the coarse clock passes 0, and never holds a signature (signatures are odd).
#define CACHE_WAY(W)                                                                       \
    Register<cache_way_t, bit<16>>(FLOW_CACHE_SETS) cache_way_##W;                         \
    RegisterAction<cache_way_t, bit<16>, bit<4>>(cache_way_##W) probe_claim_##W = {        \
        void apply(inout cache_way_t way, out bit<4> found) {                              \
            bool live = (int<32>)(way.seen - meta.live_after) > 0;                         \
            bool same = way.signature == meta.signature;                                   \
            found = this.predicate(live, same);                                            \
            if (!live) {                                                                   \
                way.signature = meta.signature;                                            \
                way.seen = meta.stamp_coarse;                                              \
            } else if (same) {                                                             \
                way.seen = meta.stamp_coarse;                                              \
            }                                                                              \
        }                                                                                  \
    };                                                                                     \
    RegisterAction<cache_way_t, bit<16>, bit<4>>(cache_way_##W) probe_refresh_##W = {      \
        void apply(inout cache_way_t way, out bit<4> found) {                              \
            bool live = (int<32>)(way.seen - meta.live_after) > 0;                         \
            bool same = way.signature == meta.signature;                                   \
            found = this.predicate(live, same);                                            \
            if (live && same) {                                                            \
                way.seen = meta.stamp_coarse;                                              \
            }                                                                              \
        }                                                                                  \
    };                                                                                     \
    RegisterAction<cache_way_t, bit<16>, bit<4>>(cache_way_##W) probe_read_##W = {         \
        void apply(inout cache_way_t way, out bit<4> found) {                              \
            bool live = (int<32>)(way.seen - meta.live_after) > 0;                         \
            bool same = way.signature == meta.signature;                                   \
            found = this.predicate(live, same);                                            \
        }                                                                                  \
    }

// Probe way W: claim only while no way has hit or been claimed. The highest hit decides.
#define PROBE_WAY(W)                                                                       \
    bool may_claim_##W = claim_allowed && !cache_hit && !claimed;                          \
    if (may_claim_##W) {                                                                   \
        found = probe_claim_##W.execute(meta.cache_set);                                   \
    } else if (refresh_allowed) {                                                          \
        found = probe_refresh_##W.execute(meta.cache_set);                                 \
    } else {                                                                               \
        found = probe_read_##W.execute(meta.cache_set);                                    \
    }                                                                                      \
    if (found == PRED_BOTH) {                                                              \
        cache_hit = true;                                                                  \
        hit_way = W;                                                                       \
    } else if (found & PRED_NOT_LO != 0) {                                                 \
        if (may_claim_##W) {                                                               \
            claimed = true;                                                                \
            claimed_way = W;                                                               \
        } else {                                                                           \
            has_free_way = true;                                                           \
        }                                                                                  \
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
    Counter<bit<32>, bit<8>>(EVENT_COUNT, CounterType_t.PACKETS) announced_events;
    DirectCounter<bit<64>>(CounterType_t.PACKETS_AND_BYTES) flow_entry_traffic;

    Admission() admission;

    // What the `flows` entry says.
    backend_id_t entry_backend = 0;
    stats_slot_t entry_stats_slot = 0;
    bit<48> entry_id = 0;

    // Whether the ring entry exists (its backend and generation are in meta).
    bool ring_hit = false;

    // ---- Timers ------------------------------------------------------------------
    action set_dispatch_settings(time_us_t cache_timeout_us, time_us_t digest_retry_us, time_us_t entry_idle_us) {
        meta.cache_timeout = (tna_time_t)cache_timeout_us;
        meta.digest_retry = (tna_time_t)digest_retry_us;
        meta.entry_idle = (tna_time_t)entry_idle_us;
    }

    // Written by the controller (default action only): the cache and digest timers and the
    // `flows` entries' idle timeout, in coarse units on TNA (targets.py converts; the
    // defaults are 1 s, 0.5 s and 0: entries are never deactivated for silence).
    table dispatch_settings {
        actions = { set_dispatch_settings; }
        default_action = set_dispatch_settings(15, 8, 0);
        size = 1;
    }

    // ---- `flows` and its activation ----------------------------------------------
    action set_flow_backend(backend_id_t backend_id, stats_slot_t stats_slot, bit<48> id) {
        entry_backend = backend_id;
        entry_stats_slot = stats_slot;
        entry_id = id;
        meta.entry_id_low = id[31:0];
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

    // Per statistics slot: the entry activated there and when it last decided a packet. An
    // activated entry silent for the entries' idle timeout is deactivated by the packet that
    // finds it so: its flow has ended, and that packet starts another flow with the key
    // (docs/consistency.md). cmplo: the same entry; cmphi: recent.
    Register<entry_state_t, stats_slot_t>(FLOW_STATS_SIZE) entry_activated;
    RegisterAction<entry_state_t, stats_slot_t, bit<4>>(entry_activated) use_entry = {
        void apply(inout entry_state_t state, out bit<4> verdict) {
            bool same = state.id == meta.entry_id_low;
            bool recent = (int<32>)(state.seen - meta.idle_after) > 0;
            verdict = this.predicate(same, recent);
            if (same && recent) {
                state.seen = meta.stamp_coarse;
            }
            if (same && !recent) {
                state.id = 0;
            }
        }
    };
    RegisterAction<entry_state_t, stats_slot_t, bit<4>>(entry_activated) activate = {
        void apply(inout entry_state_t state, out bit<4> verdict) {
            state.id = meta.entry_id_low;
            state.seen = meta.stamp_coarse;
        }
    };

    // ---- The ring ------------------------------------------------------------------
    action set_ring_backend(backend_id_t backend_id, bit<32> generation) {
        meta.ring_backend = backend_id;
        meta.ring_generation = generation;
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

    // Per ring entry: when a stateless flow last depended on it (0: never). Returns
    // whether that was less than the cache timeout ago (cmplo) and ever (cmphi): held.
    Register<tna_time_t, bit<32>>(DISPATCH_RING_TABLE_SIZE, 0) ring_stateless_seen;
    RegisterAction<tna_time_t, bit<32>, bit<4>>(ring_stateless_seen) stamp_stateless = {
        void apply(inout tna_time_t seen, out bit<4> held) {
            held = this.predicate((int<32>)(seen - meta.live_after) > 0, seen != 0);
            seen = meta.stamp_coarse;
        }
    };
    RegisterAction<tna_time_t, bit<32>, bit<4>>(ring_stateless_seen) read_stateless = {
        void apply(inout tna_time_t seen, out bit<4> held) {
            held = this.predicate((int<32>)(seen - meta.live_after) > 0, seen != 0);
        }
    };

    // Per ring entry: the generation stateless decisions use, and its backend (each
    // generation number names one backend: the controller never reuses one).
    Register<ring_applied_t, bit<32>>(DISPATCH_RING_TABLE_SIZE) ring_applied;
    // Not held: take the entry's newest generation; says whether it was new (cmplo).
    RegisterAction<ring_applied_t, bit<32>, bit<4>>(ring_applied) take_newest = {
        void apply(inout ring_applied_t applied, out bit<4> changed) {
            changed = this.predicate(applied.generation != meta.ring_generation);
            if (applied.generation != meta.ring_generation) {
                applied.generation = meta.ring_generation;
                applied.backend = (bit<32>)meta.ring_backend;
            }
        }
    };
    // Held: the applied generation's backend (the entry's own while it is unchanged).
    RegisterAction<ring_applied_t, bit<32>, bit<32>>(ring_applied) take_held = {
        void apply(inout ring_applied_t applied, out bit<32> backend) {
            backend = applied.backend;
        }
    };

    // ---- Announced flows (docs/sessions.md) ---------------------------------------------
    backend_id_t announced_backend = 0;

    action set_announced_backend(backend_id_t backend_id) {
        announced_backend = backend_id;
    }

    // Filled by the controller from the signalling it parses (controller/sessions/): the
    // flows a session announced, before their first packet, with the backend of the
    // session's signalling flow; the entry's P4Runtime metadata names the session and is
    // never seen here. One end is often unknown (an SDP offer, FTP's PASV: the client's
    // port), so the key is ternary; each announced port is written twice, as source and as
    // destination (either end may be the announced one, and a capture service's key is
    // sorted). Applied only to a flow's first packet (NEW or COLLISION), so an entry goes
    // idle (idle_timeout: the driver reports it, the controller deletes it) when no new
    // flow has matched it for the announcement's start time, however long its flows run.
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
        idle_timeout = true;
    }

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

    // Per way: 1 when its backend came from announced_flows, so every digest of the flow
    // carries DIGEST_FLAG_ANNOUNCED (a TCP flow's first digest goes at its ACK, not at the
    // SYN that hit the table). Written with the way's backend, read when the way is hit;
    // constant writes only, which a 1-bit register's stateful ALU does (set, clear, read).
    Register<bit<1>, cache_index_t>(FLOW_CACHE_SIZE, 0) cache_announced;
    RegisterAction<bit<1>, cache_index_t, bit<1>>(cache_announced) mark_announced = {
        void apply(inout bit<1> announced) {
            announced = 1;
        }
    };
    RegisterAction<bit<1>, cache_index_t, bit<1>>(cache_announced) mark_not_announced = {
        void apply(inout bit<1> announced) {
            announced = 0;
        }
    };
    RegisterAction<bit<1>, cache_index_t, bit<1>>(cache_announced) read_announced = {
        void apply(inout bit<1> announced, out bit<1> result) {
            result = announced;
        }
    };

    // Caller's last SYN (fine clock, 0: none): written when the way is claimed, restarted by
    // a caller SYN; returns the time before (for the RTT sample).
    Register<tna_time_t, cache_index_t>(FLOW_CACHE_SIZE) cache_syn;
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_start = {
        void apply(inout tna_time_t syn) {
            syn = meta.stamp;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_clear = {
        void apply(inout tna_time_t syn) {
            syn = 0;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_restart = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            before = syn;
            syn = meta.stamp;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, tna_time_t>(cache_syn) syn_read = {
        void apply(inout tna_time_t syn, out tna_time_t before) {
            before = syn;
        }
    };

    // Last digest (coarse clock, 0: not confirmed). cmplo: never sent; cmphi: the last
    // one is a retry interval old. A confirming packet sends the first (cmplo) or a repeat
    // (cmphi only); any other packet a repeat only.
    Register<tna_time_t, cache_index_t>(FLOW_CACHE_SIZE) cache_digest;
    RegisterAction<tna_time_t, cache_index_t, bit<4>>(cache_digest) digest_start = {
        void apply(inout tna_time_t sent) {
            sent = meta.stamp_coarse;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, bit<4>>(cache_digest) digest_clear = {
        void apply(inout tna_time_t sent) {
            sent = 0;
        }
    };
    RegisterAction<tna_time_t, cache_index_t, bit<4>>(cache_digest) digest_confirming = {
        void apply(inout tna_time_t sent, out bit<4> verdict) {
            bool never = sent == 0;
            bool due = (int<32>)(sent - meta.retry_before) <= 0;
            verdict = this.predicate(never, due);
            if (never || due) {
                sent = meta.stamp_coarse;
            }
        }
    };
    RegisterAction<tna_time_t, cache_index_t, bit<4>>(cache_digest) digest_other = {
        void apply(inout tna_time_t sent, out bit<4> verdict) {
            bool never = sent == 0;
            bool due = (int<32>)(sent - meta.retry_before) <= 0;
            verdict = this.predicate(never, due);
            if (!never && due) {
                sent = meta.stamp_coarse;
            }
        }
    };

    // A digest's flow: the key, service, backend and TCP flags. Its flags (with
    // DIGEST_FLAG_SYMMETRIC for a capture service's sorted key) and RTT are the caller's.
    action fill_digest() {
        meta.digest.src_addr = meta.flow.src_addr;
        meta.digest.dst_addr = meta.flow.dst_addr;
        meta.digest.protocol = meta.flow.protocol;
        meta.digest.src_port = meta.flow.src_port;
        meta.digest.dst_port = meta.flow.dst_port;
        meta.digest.service_id = meta.service_id;
        meta.digest.backend_id = meta.backend_id;
        meta.digest.tcp_flags = meta.tcp_flags;
    }

    apply {
        dispatch_settings.apply();
        meta.live_after = meta.now_coarse - meta.cache_timeout;
        meta.retry_before = meta.now_coarse - meta.digest_retry;
        // Entries that decided a packet after this are recent (idle timeout 0: all of them).
        meta.idle_after = meta.now_coarse - (meta.entry_idle == 0 ? 32w0x7FFFFFFF : meta.entry_idle);
        bool is_tcp = hdr.tcp.isValid();
        bit<8> syn_ack = meta.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK);
        bool caller_syn = is_tcp && syn_ack == TCP_FLAG_SYN;
        bool confirms = !is_tcp || syn_ack == TCP_FLAG_ACK;
        // Signatures are odd, so never 0: an empty way holds none.
        meta.signature = meta.signature | 1;

        // ---- `flows` (one apply for both passes) -----------------------------------------
        bool stateless = false;
        bool entered = false;
        bool entry_to_check = false;
        bool entry_expired = false;   // counted below, unless the entry turns out stale too
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
                if ((entry_id & ENTRY_ID_REPORT_ACTIVATION) != 0) {
                    // The entry's id asked to hear of its activation: several switches
                    // replicate a flow's entry only once its home has taken it over
                    // (docs/multiswitch.md, rule 3). This pass has the whole id from the
                    // table (the activation register keeps its low 32 bits only).
                    digest_events.count(EVENT_DIGEST);
                    meta.digest.flags = DIGEST_FLAG_ACTIVATED;
                    if (meta.service_mode == SERVICE_MODE_CAPTURE) {
                        meta.digest.flags = meta.digest.flags | DIGEST_FLAG_SYMMETRIC;
                    }
                    fill_digest();
                    meta.digest.rtt_us = 0;
                    ig_dprsr_md.digest_type = DIGEST_TYPE_NEW_FLOW;
                }
            } else {
                meta.drop_reason = DropReason.NO_BACKEND;   // deleted between the passes
            }
            return;
        }
        if (flows_hit) {
            if (entry_id == 0) {
                entered = true;
            } else {
                bit<4> verdict = use_entry.execute(entry_stats_slot);
                entered = verdict == PRED_BOTH;
                entry_to_check = !entered;
                entry_expired = verdict == PRED_LO;
            }
        }

        // ---- Admission, both ways, before anything is written. ----------------------
        // (An installed flow is not subject to admission, and takes no meter token.)
        bool refuse_new = false;
        bool refuse_established = false;
        if (!entered) {
            admission.apply(meta.service_id, caller_syn, refuse_new, refuse_established);
        }
        bool new_if_unseen = !is_tcp || caller_syn;   // a NEW flow would be SA2C-new
        bool claim_allowed = new_if_unseen ? !refuse_new : !refuse_established;
        bool refresh_allowed = !refuse_established;

        // ---- The cache ---------------------------------------------------------------
        bool cache_hit = false;
        bool claimed = false;
        bool has_free_way = false;
        bit<2> hit_way = 0;
        bit<2> claimed_way = 0;
        bit<4> found;
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
        cache_index_t way_index = (cache_index_t)(meta.cache_set ++ (cache_hit ? hit_way : claimed_way));

        // SA2C's verdict for this packet, now that its state is known.
        meta.is_new_flow =
            (meta.flow_state == FLOW_STATE_NEW && new_if_unseen) ||
            (meta.flow_state == FLOW_STATE_COLLISION && caller_syn);
        bool refused = meta.flow_state != FLOW_STATE_INSTALLED &&
                       (meta.is_new_flow ? refuse_new : refuse_established);

        // ---- A decision without flow state: an announcement, or the ring entry. ----------
        bit<32> ring_index = meta.ring_base + (bit<32>)meta.ring_slot;
        bool announced = false;
        if (meta.flow_state == FLOW_STATE_NEW || stateless) {
            dispatch_ring.apply();
            // Held: a stateless flow used this ring entry less than the cache timeout ago.
            // Stamped only by a stateless packet the ring forwards (v1model: one with a
            // backend, not refused); read for every other, the announced check included.
            bit<4> held;
            if (stateless && !refused && ring_hit) {
                held = stamp_stateless.execute(ring_index);
            } else {
                held = read_stateless.execute(ring_index);
            }
            // An announced flow's first packet: the session's backend, only for a flow that
            // gets a cache way (no later packet of it asks again) and whose ring entry no
            // stateless flow holds (that flow may be this one, met again now that its set
            // has room): such a packet starts a flow, and any backend is its first.
            if (meta.flow_state == FLOW_STATE_NEW || meta.flow_state == FLOW_STATE_COLLISION) {
                if (announced_flows.apply().hit) {
                    if (meta.flow_state == FLOW_STATE_NEW && held != PRED_BOTH) {
                        announced = true;
                        meta.backend_id = announced_backend;
                        meta.has_backend = true;
                        announced_events.count(EVENT_ANNOUNCED_HIT);
                    } else {
                        announced_events.count(EVENT_ANNOUNCED_UNUSED);
                    }
                }
            }
            if (ring_hit && !announced) {
                if (held == PRED_BOTH) {
                    meta.backend_id = (backend_id_t)take_held.execute(ring_index);
                    if (meta.backend_id != meta.ring_backend) {
                        generation_events.count(EVENT_GENERATION_HELD);
                    }
                } else {
                    meta.backend_id = meta.ring_backend;
                    if (take_newest.execute(ring_index) == PRED_LO) {
                        generation_events.count(EVENT_GENERATION_APPLIED);
                    }
                }
                meta.has_backend = true;
            }
        }

        // ---- The flow's way: its backend, and whether that came from an announcement. ---
        bit<1> way_announced = 0;
        if (meta.flow_state == FLOW_STATE_CACHED) {
            meta.backend_id = read_backend.execute(way_index);
            meta.has_backend = true;
            way_announced = read_announced.execute(way_index);
        } else if (meta.flow_state == FLOW_STATE_NEW && claimed && meta.has_backend) {
            write_backend.execute(way_index);
            if (announced) {
                mark_announced.execute(way_index);
                way_announced = 1;
            } else {
                mark_not_announced.execute(way_index);
            }
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
            }
        }
        // One access to entry_events per packet: stale (the flow's digest says it) first.
        if (stale_entry) {
            entry_events.count(EVENT_ENTRY_STALE);
        } else if (entry_expired) {
            entry_events.count(EVENT_ENTRY_EXPIRED);
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
        bool first_digest = false;
        bool repeat_digest = false;
        tna_time_t syn_before = 0;
        if (meta.flow_state == FLOW_STATE_NEW && claimed) {
            if (caller_syn) {
                syn_start.execute(way_index);
            } else {
                syn_clear.execute(way_index);
            }
            if (confirms) {
                digest_start.execute(way_index);
                first_digest = true;
            } else {
                digest_clear.execute(way_index);
            }
        } else if (meta.flow_state == FLOW_STATE_CACHED) {
            if (caller_syn) {
                syn_before = syn_restart.execute(way_index);
            } else {
                syn_before = syn_read.execute(way_index);
            }
            bit<4> verdict;
            if (confirms) {
                verdict = digest_confirming.execute(way_index);
                first_digest = verdict & PRED_LO_ANY != 0;
            } else {
                verdict = digest_other.execute(way_index);
            }
            repeat_digest = verdict == PRED_HI;
        }
        bool send_digest = first_digest || repeat_digest;
        tna_time_t rtt = 0;
        if (way_announced == 1) {
            meta.digest.flags = DIGEST_FLAG_ANNOUNCED;   // on the first digest and on repeats
        }
        if (first_digest) {
            if (meta.flow_state == FLOW_STATE_CACHED && syn_before != 0) {
                rtt = meta.now - syn_before;
                meta.digest.flags = meta.digest.flags | DIGEST_FLAG_RTT_VALID;
            }
        } else if (repeat_digest) {
            meta.digest.flags = meta.digest.flags | DIGEST_FLAG_RETRY;
        } else if (meta.flow_state == FLOW_STATE_COLLISION) {
            // Not cached: ask for an entry on every confirming packet (docs/dataplane.md).
            // Never announced: a flow with no way does not take an announced backend.
            send_digest = confirms;
            meta.digest.flags = DIGEST_FLAG_COLLISION;
        }
        if (stale_entry) {
            meta.digest.flags = meta.digest.flags | DIGEST_FLAG_STALE_ENTRY;
        }
        if (send_digest) {
            digest_events.count(repeat_digest ? EVENT_DIGEST_RETRY : EVENT_DIGEST);
            if (meta.service_mode == SERVICE_MODE_CAPTURE) {
                meta.digest.flags = meta.digest.flags | DIGEST_FLAG_SYMMETRIC;
            }
            fill_digest();
            // 1,024 ns units to microseconds: x * 1.024 ~ x + x/64 + x/128 (0.06 % low).
            meta.digest.rtt_us = rtt + (rtt >> 6) + (rtt >> 7);
            ig_dprsr_md.digest_type = DIGEST_TYPE_NEW_FLOW;
        }
    }
}

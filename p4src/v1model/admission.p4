// Admission control (SARA SA2C): the controller sets a level per service from its
// smoothed cluster-load estimate; the data plane applies it per packet.
//   ADMIT_ALL                   nothing refused
//   ADMIT_DROP_NEW_PROB         new flows dropped with probability p
//   ADMIT_ESTABLISHED_ONLY      every new flow dropped
//   ADMIT_DEGRADE_ESTABLISHED   every new flow dropped, established packets with probability p
//   ADMIT_REJECT_ALL            everything dropped
// p = drop_prob / 65536.

control Admission(inout local_metadata_t meta) {

    action set_admission(bit<8> level, bit<16> drop_prob) {
        meta.admission_level = level;
        meta.admission_prob = drop_prob;
    }

    // Filled by the controller: one entry per service whose level is not ADMIT_ALL.
    table admission {
        key = { meta.service_id : exact @name("service_id"); }
        actions = { set_admission; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICES_TABLE_SIZE;
    }

    apply {
        admission.apply();
        if (meta.admission_level == ADMIT_ALL) {
            return;
        }
        bit<16> draw;
        random(draw, 16w0, 16w0xFFFF);
        bool unlucky = draw < meta.admission_prob;
        bit<8> level = meta.admission_level;
        if (meta.is_new_flow) {
            if (level >= ADMIT_ESTABLISHED_ONLY || (level == ADMIT_DROP_NEW_PROB && unlucky)) {
                meta.drop_reason = DROP_ADMISSION_NEW;
            }
        } else if (level == ADMIT_REJECT_ALL || (level == ADMIT_DEGRADE_ESTABLISHED && unlucky)) {
            meta.drop_reason = DROP_ADMISSION_ESTABLISHED;
        }
    }
}

// Admission control (SARA SA2C): the levels of p4src/v1model/admission.p4, from the same
// `admission` table, and the same new-flow meter per service (`new_flow_meter`, a packet
// rate token bucket the controller sets to SA2C's new-flow budget; unconfigured: GREEN).
// p = drop_prob / 65536, drawn with the Random extern.
//
// What TNA changes: the verdict is computed before the flow cache is probed, for both
// cases ("if this packet is a new flow" and "if it is established"), because the cache
// probe writes the cache in the same stateful-ALU access that reads it: a refused packet
// must select a probe that writes nothing (flow_dispatch.p4). v1model decides after the
// probe and writes the cache afterwards; the outcome per packet is the same. For the
// meter this means: a token is taken before it is known whether the packet starts a flow,
// so TNA meters the caller's SYNs only (a retransmitted SYN of a cached flow takes one
// too); other protocols' new flows are not metered on TNA (docs/tna.md).

control Admission(in service_id_t service_id, in bool caller_syn,
                  out bool refuse_new, out bool refuse_established) {

    Random<bit<16>>() draw_prob;
    // Indexed by service id; configured by the controller (MeterEntry) only for services
    // whose SA2C has a new-flow budget.
    Meter<bit<32>>(SERVICES_TABLE_SIZE, MeterType_t.PACKETS) new_flow_meter;
    AdmissionLevel service_level = AdmissionLevel.ADMIT_ALL;
    bit<16> service_drop_prob = 0;

    action set_admission(AdmissionLevel level, bit<16> drop_prob) {
        service_level = level;
        service_drop_prob = drop_prob;
    }

    // Filled by the controller: one entry per service whose level is not ADMIT_ALL.
    table admission {
        key = { service_id : exact @name("service_id"); }
        actions = { set_admission; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICES_TABLE_SIZE;
    }

    apply {
        refuse_new = false;
        refuse_established = false;
        admission.apply();
        bit<16> draw = draw_prob.get();
        bool unlucky = draw < service_drop_prob;
        if (service_level == AdmissionLevel.DROP_NEW_PROB) {
            refuse_new = unlucky;
        } else if (service_level == AdmissionLevel.ESTABLISHED_ONLY) {
            refuse_new = true;
        } else if (service_level == AdmissionLevel.DEGRADE_ESTABLISHED) {
            refuse_new = true;
            refuse_established = unlucky;
        } else if (service_level == AdmissionLevel.REJECT_ALL) {
            refuse_new = true;
            refuse_established = true;
        }
        // Only SYNs the level admitted take a token: refused ones must not use up the budget.
        if (caller_syn && !refuse_new) {
            refuse_new = new_flow_meter.execute((bit<32>)service_id) == (bit<8>)MeterColor_t.RED;
        }
    }
}

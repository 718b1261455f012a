// Admission control (SARA SA2C): the controller sets a level per service from its
// smoothed cluster-load estimate; the data plane applies it per packet.
//   ADMIT_ALL             nothing refused
//   DROP_NEW_PROB         new flows dropped with probability p
//   ESTABLISHED_ONLY      every new flow dropped
//   DEGRADE_ESTABLISHED   every new flow dropped, established packets with probability p
//   REJECT_ALL            everything dropped
// p = drop_prob / 65536.
//
// Besides the level, a new-flow meter per service (a packet-rate token bucket): a new flow
// that the level admits but finds the bucket empty (RED) is refused too. The controller sets
// its rate each period to the new flows the cluster can take then (the SA2C new-flow budget,
// controller/admission_control.py), so a burst of clients' SYN retries gets in at that rate,
// not all at once. A meter the controller never configured is GREEN for every packet.

control Admission(in service_id_t service_id, in bool is_new_flow, inout DropReason drop_reason) {

    AdmissionLevel service_level = AdmissionLevel.ADMIT_ALL;
    bit<16> service_drop_prob = 0;

    action set_admission(AdmissionLevel level, bit<16> drop_prob) {
        service_level = level;
        service_drop_prob = drop_prob;
    }

    // Indexed by service id; configured by the controller (MeterEntry) only for services whose
    // SA2C has a new-flow budget.
    meter((bit<32>)SERVICES_TABLE_SIZE, MeterType.packets) new_flow_meter;

    // Only new flows the level admitted take a token: refused ones must not use up the budget.
    action meter_new_flow() {
        bit<2> color;
        new_flow_meter.execute_meter((bit<32>)service_id, color);
        if (color == V1MODEL_METER_COLOR_RED) {
            drop_reason = DropReason.ADMISSION_NEW;
        }
    }

    // Filled by the controller: one entry per service whose level is not ADMIT_ALL.
    table admission {
        key = { service_id : exact @name("service_id"); }
        actions = { set_admission; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICES_TABLE_SIZE;
    }

    apply {
        admission.apply();
        if (service_level == AdmissionLevel.ADMIT_ALL) {
            if (is_new_flow) {
                meter_new_flow();
            }
            return;
        }
        bit<16> draw;
        random(draw, 16w0, 16w0xFFFF);
        bool unlucky = draw < service_drop_prob;
        if (is_new_flow) {
            // Every level from ESTABLISHED_ONLY up refuses new flows.
            if (service_level != AdmissionLevel.DROP_NEW_PROB || unlucky) {
                drop_reason = DropReason.ADMISSION_NEW;
            } else {
                meter_new_flow();
            }
        } else if (service_level == AdmissionLevel.REJECT_ALL ||
                   (service_level == AdmissionLevel.DEGRADE_ESTABLISHED && unlucky)) {
            drop_reason = DropReason.ADMISSION_ESTABLISHED;
        }
    }
}

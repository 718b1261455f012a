// The flow dispatcher for v1model (BMv2 simple_switch_grpc).
// Build: scripts/build_p4.sh -> build/dispatcher.json, build/dispatcher.p4info.txtpb

#include <core.p4>
#include <v1model.p4>

#include "../shared/constants.p4"
#include "../shared/types.p4"
#include "../shared/sizes.p4"
#include "../shared/headers.p4"
#include "../shared/metadata.p4"
#include "metadata.p4"

#include "parser.p4"
#include "packet_io.p4"
#include "checksums.p4"
#include "validation.p4"
#include "flow_key.p4"
#include "classifier.p4"
#include "admission.p4"
#include "flow_dispatch.p4"
#include "backend_forward.p4"
#include "signalling.p4"
#include "ingress.p4"
#include "egress.p4"
#include "deparser.p4"

V1Switch(
    DispatcherParser(),
    DispatcherVerifyChecksum(),
    DispatcherIngress(),
    DispatcherEgress(),
    DispatcherComputeChecksum(),
    DispatcherDeparser()
) main;

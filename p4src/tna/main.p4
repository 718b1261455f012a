// The flow dispatcher for TNA (Tofino 1: tna.p4; Tofino 2: t2na.p4), from the same shared
// sources as the v1model program (p4src/shared/). Where TNA forces another mechanism than
// v1model, each file says so at its top; docs/dataplane.md has the table-by-table list.
// Build: scripts/build_p4.sh (with bf-p4c on PATH) -> build/tna/tofino{,2}/
// Check without bf-p4c: p4test with the TNA include files (tests/integration/test_tna_program.py).

#include <core.p4>
#if __TARGET_TOFINO__ == 2
#include <t2na.p4>
#else
#include <tna.p4>
#endif

#include "../shared/constants.p4"
#include "../shared/types.p4"
#include "../shared/sizes.p4"
#include "../shared/headers.p4"
#include "../shared/metadata.p4"
#include "metadata.p4"

#include "parser.p4"
#include "packet_io.p4"
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

Pipeline(
    DispatcherIngressParser(),
    DispatcherIngress(),
    DispatcherIngressDeparser(),
    DispatcherEgressParser(),
    DispatcherEgress(),
    DispatcherEgressDeparser()
) pipe;

Switch(pipe) main;

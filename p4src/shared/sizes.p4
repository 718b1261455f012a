// Table, register and counter sizes. One place to retune them per target.
#ifndef FLOW_DISPATCHER_SIZES_P4
#define FLOW_DISPATCHER_SIZES_P4

#define PORT_COUNT 512              // bit<9> port numbers
#define SERVICES_TABLE_SIZE 1024
#define SERVICE_PORT_RANGES_TABLE_SIZE 256   // port ranges of VIP services' sessions
#define VIPS_TABLE_SIZE 256
#define CAPTURE_PORTS_TABLE_SIZE 64
#define L2_TABLE_SIZE 4096
// Overridable at compile time (scripts/build_p4.sh -DFLOWS_TABLE_SIZE=...), e.g. for a
// small table in the table-full test.
#ifndef FLOWS_TABLE_SIZE
#define FLOWS_TABLE_SIZE 131072
#endif
#ifndef FLOW_STATS_SIZE
#define FLOW_STATS_SIZE 131072      // per-flow stats slots, one per `flows` entry
#endif
#define DISPATCH_RING_TABLE_SIZE 65536  // summed over all services
#define BACKENDS_TABLE_SIZE 1024
#define SIGNALLING_TABLE_SIZE 64
// Filled by the controller from the signalling it parses (SIP/SDP, RTSP, FTP): two ternary
// entries per announced port (the announced end as source and as destination), kept until
// they go idle for the announcement's start time or the session ends. Ternary lookups
// scan their entries on BMv2, and the table is consulted only for a flow's first packet,
// so it stays small: 2,048 entries are 1,024 announced ports (about 250 calls with RTP and
// RTCP in both directions, or 1,000 pending FTP data connections) at once.
#ifndef ANNOUNCED_FLOWS_TABLE_SIZE
#define ANNOUNCED_FLOWS_TABLE_SIZE 2048
#endif

// Flow cache: FLOW_CACHE_SETS sets (a power of two, indexed by the low bits of the flow
// hash) of FLOW_CACHE_WAYS ways. Sized for 100,000 new flows/s with a 1 s cache timeout
// (docs/consistency.md has the formula). Overridable, e.g. for a tiny cache in PTF.
#ifndef FLOW_CACHE_SETS
#define FLOW_CACHE_SETS 65536
#endif
#define FLOW_CACHE_WAYS 4           // flow_dispatch.p4 probes exactly this many
#define FLOW_CACHE_SIZE (FLOW_CACHE_SETS * FLOW_CACHE_WAYS)

// Rings are a power of two in size (at most 65,536 slots) so a slot is a mask of the
// hash, which every target can compute; the controller writes the mask per service.

#endif

// Types shared by every target build: identifiers the controller writes and reads.
#ifndef FLOW_DISPATCHER_TYPES_P4
#define FLOW_DISPATCHER_TYPES_P4

typedef bit<48>  mac_addr_t;
typedef bit<32>  ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<128> flow_addr_t;     // IPv6, or IPv4 mapped into IPv6 (::ffff:a.b.c.d)
typedef bit<9>   port_id_t;       // a switch port (9 bits on v1model and on Tofino)
typedef bit<16>  service_id_t;    // the `services` / `capture_ports` entry's service
typedef bit<16>  backend_id_t;    // the `backends` table's key
typedef bit<16>  ring_slot_t;     // index into a service's dispatch ring
typedef bit<32>  stats_slot_t;    // index into the `flow_stats` counter
typedef bit<32>  cache_index_t;   // index into the flow cache registers
typedef bit<48>  time_us_t;       // data-plane timestamps, microseconds

#endif

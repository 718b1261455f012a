// Per-packet metadata of the v1model program.

struct local_metadata_t {
    time_us_t now_us;
    DropReason drop_reason;

    // What the packet carries (parser).
    bool is_ip;
    bool is_ip_fragment;
    bool ipv4_checksum_bad;
    bool has_l4;
    bit<8> tcp_flags;
    bit<16> l4_src_port;
    bit<16> l4_dst_port;
    bit<16> l3_header_offset;  // bytes before the IP header (Ethernet, VLAN)

    // Classification.
    bit<8> service_mode;       // SERVICE_MODE_*
    service_id_t service_id;
    bit<16> ring_mask;
    bit<32> ring_base;         // the service's first entry in the global ring space
    bool is_vip;
    bool ring_by_client;       // client affinity: the ring slot from the client's address only

    // Flow identity.
    flow_key_t flow;
    cache_index_t cache_index; // the flow's cache set
    ring_slot_t ring_slot;

    // Dispatch decision.
    bit<8> flow_state;         // FLOW_STATE_*
    backend_id_t backend_id;
    bool has_backend;
    bool is_new_flow;          // SA2C's "new": a connection that has not started yet
    bit<32> truncate_bytes;    // capture output: keep this many bytes (0: whole packet)

    // Timers written by the controller (dispatch_settings).
    time_us_t cache_timeout_us;
    time_us_t digest_retry_us;
    time_us_t entry_idle_us;     // the `flows` entries' idle timeout (0: not checked)

    flow_digest_t digest;

    // For the packet-in header; preserved on the clone to the CPU port (v1model's
    // clone_preserving_field_list keeps only fields in the named list).
    @field_list(CLONE_FIELD_LIST_CPU)
    port_id_t cpu_ingress_port;
    @field_list(CLONE_FIELD_LIST_CPU)
    PacketInReason cpu_reason;
    @field_list(CLONE_FIELD_LIST_CPU)
    DropReason cpu_drop_reason;
    @field_list(CLONE_FIELD_LIST_CPU)
    backend_id_t cpu_backend_id;
}

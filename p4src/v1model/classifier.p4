// Classifier: is this packet for a dispatched service, and which one?
// A capture (tap) port makes every packet a capture-service packet; otherwise a
// (VIP, protocol, port) match makes it a VIP-service packet. VIP traffic with no
// service, or fragmented, is dropped and counted. Everything else is plain L2.

control Classifier(inout headers_t hdr,
                   inout local_metadata_t meta,
                   inout standard_metadata_t standard_metadata) {

    action set_capture_service(service_id_t service_id, bit<16> ring_mask, bit<32> ring_base) {
        meta.service_mode = SERVICE_MODE_CAPTURE;
        meta.service_id = service_id;
        meta.ring_mask = ring_mask;
        meta.ring_base = ring_base;
    }

    // Filled by the controller: one entry per tap port of a capture service.
    table capture_ports {
        key = { standard_metadata.ingress_port : exact @name("ingress_port"); }
        actions = { set_capture_service; @defaultonly NoAction; }
        const default_action = NoAction();
        size = CAPTURE_PORTS_TABLE_SIZE;
    }

    action set_vip_service(service_id_t service_id, bit<16> ring_mask, bit<32> ring_base) {
        meta.service_mode = SERVICE_MODE_VIP;
        meta.service_id = service_id;
        meta.ring_mask = ring_mask;
        meta.ring_base = ring_base;
    }

    // Filled by the controller: one entry per (VIP, protocol, port) service.
    // IPv4 VIPs are written IPv4-mapped (::ffff:a.b.c.d).
    table services {
        key = {
            meta.flow.dst_addr : exact @name("vip");
            meta.flow.protocol : exact @name("protocol");
            meta.flow.dst_port : exact @name("port");
        }
        actions = { set_vip_service; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICES_TABLE_SIZE;
    }

    // Filled by the controller: a VIP service's `session_ports` (issue 13), the ranges of
    // the VIP's ports its sessions announce flows to (RTP media, FTP data). Their flows
    // belong to the service, so they are dispatched like its own: to the backend an
    // `announced_flows` entry names, else by the ring. Kept apart from `services` so that
    // table stays exact; consulted only when `services` misses.
    table service_port_ranges {
        key = {
            meta.flow.dst_addr : exact @name("vip");
            meta.flow.protocol : exact @name("protocol");
            meta.flow.dst_port : range @name("port");
        }
        actions = { set_vip_service; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICE_PORT_RANGES_TABLE_SIZE;
    }

    action ring_by_client() {
        meta.ring_by_client = true;
    }

    // Filled by the controller: one entry per VIP service with `affinity = "client"`. Its
    // ring slot is a hash of the client's address alone, so every connection of a client
    // (an FTP control connection and its data connections, whatever their ports) is decided
    // alike from its first packet, with no controller in the path. Per-connection
    // consistency is unchanged: flows keep their full 5-tuple in the cache and in `flows`.
    table client_affinity {
        key = { meta.service_id : exact @name("service_id"); }
        actions = { ring_by_client; @defaultonly NoAction; }
        const default_action = NoAction();
        size = SERVICES_TABLE_SIZE;
    }

    action mark_vip() {
        meta.is_vip = true;
    }

    // Filled by the controller: one entry per VIP address, so traffic to a VIP port
    // that has no service is recognised and dropped rather than leaked to L2.
    table vips {
        key = { meta.flow.dst_addr : exact @name("vip"); }
        actions = { mark_vip; @defaultonly NoAction; }
        const default_action = NoAction();
        size = VIPS_TABLE_SIZE;
    }

    action l2_output(port_id_t port) {
        standard_metadata.egress_spec = port;
    }

    action l2_flood(bit<16> group) {
        standard_metadata.mcast_grp = group;
    }

    action l2_miss() {
        meta.drop_reason = DropReason.L2_MISS;
    }

    // Filled by the controller: plain L2 forwarding for non-service traffic. The default
    // (drop) may be replaced by l2_flood with a multicast group the controller made.
    table l2_forward {
        key = { hdr.ethernet.dst_addr : exact @name("dst_mac"); }
        actions = { l2_output; l2_flood; l2_miss; }
        default_action = l2_miss();
        size = L2_TABLE_SIZE;
    }

    apply {
        if (capture_ports.apply().hit) {
            return;
        }
        if (meta.is_ip) {
            bool service_hit = false;
            if (!meta.is_ip_fragment) {
                service_hit = services.apply().hit;
                if (!service_hit) {
                    service_hit = service_port_ranges.apply().hit;
                }
            }
            if (!service_hit) {
                if (vips.apply().hit) {
                    if (meta.is_ip_fragment) {
                        meta.drop_reason = DropReason.VIP_FRAGMENT;
                    } else {
                        meta.drop_reason = DropReason.VIP_PORT_UNCONFIGURED;
                    }
                }
            }
        }
        if (meta.service_mode == SERVICE_MODE_VIP) {
            client_affinity.apply();
        }
        if (meta.service_mode == SERVICE_MODE_NONE && meta.drop_reason == DropReason.NONE) {
            l2_forward.apply();
        }
    }
}

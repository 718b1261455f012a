// Deparser: headers in wire order. Invalid headers are skipped; the outer IPv4 header
// exists only on IP-in-IP packets, the packet-in header only on CPU clones.

control DispatcherDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.vlan);
        packet.emit(hdr.outer_ipv4);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv4_options);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
    }
}

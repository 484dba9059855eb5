/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between http.bpf.c and netbpf/tools/http/__init__.py. */
#ifndef NETBPF_HTTP_H
#define NETBPF_HTTP_H

#define HTTP_MAX_PORTS 16
#define HTTP_MAX_IFINDEXES 8
#define HTTP_MAX_VXLAN_PORTS 4

/* Per-CPU counters, summed by user space. */
enum http_counter {
	HTTP_FRAMES_SEEN = 0,	/* every frame the socket filter ran on */
	HTTP_FRAMES_KEPT,	/* frames of a target port handed to the ring */
	HTTP_BYTES_KEPT,
	HTTP_ACKS_SKIPPED,	/* target-port segments without payload or SYN/FIN/RST */
	HTTP_OTHER_IFACE,	/* frames of interfaces not asked for (-i a,b) */
	HTTP_KEPT_IPIP,		/* kept frames that were inside IPIP / IPv6-in-IP */
	HTTP_KEPT_VXLAN,	/* kept frames that were inside VXLAN */
	HTTP_PROTO_TCP,		/* innermost IP protocol of every frame seen (the seed's */
	HTTP_PROTO_UDP,		/* per-protocol count) */
	HTTP_PROTO_ICMP,
	HTTP_PROTO_OTHER,
	HTTP_NOT_IP,		/* ARP, LLDP, ... */
	HTTP_MALFORMED,		/* shorter than its headers claim */
	HTTP_COUNTERS,
};

/* What the filter looks for, set before load (one const volatile global). */
struct http_config {
	__u16 ports[HTTP_MAX_PORTS];		/* TCP ports, host order; 0 = unused */
	__u32 n_ports;
	__u32 ifindexes[HTTP_MAX_IFINDEXES];	/* only these interfaces; n = 0: all */
	__u32 n_ifindexes;
	__u16 vxlan_ports[HTTP_MAX_VXLAN_PORTS];	/* UDP destination ports carrying VXLAN */
	__u32 n_vxlan_ports;
	__u32 keep_acks;			/* 1: keep payload-less ACKs too */
};

#endif /* NETBPF_HTTP_H */

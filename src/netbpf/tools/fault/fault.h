/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between fault.bpf.c and netbpf/tools/fault/kernel.py. */
#ifndef NETBPF_FAULT_H
#define NETBPF_FAULT_H

/* Per-CPU counters, summed by the Python side. */
enum fault_counter {
	FAULT_SEEN = 0,		/* packets that reached the hook (clones of `duplicate` excluded) */
	FAULT_MATCHED,		/* the expression matched and the action applies */
	FAULT_SKIPPED,		/* the expression matched but the action has nothing to do */
	FAULT_HIT,		/* selected and acted on */
	FAULT_ERRORS,		/* selected, but a helper failed: the packet went on unchanged */
	FAULT_COUNTERS,
};

enum fault_action {
	FAULT_ACT_TTL = 1,
	FAULT_ACT_TCP_FLAGS,
	FAULT_ACT_DROP,
	FAULT_ACT_CORRUPT,
	FAULT_ACT_DUPLICATE,
	FAULT_ACT_RST,
};

enum fault_select {
	FAULT_SEL_ALL = 0,
	FAULT_SEL_SAMPLE,	/* bpf_get_prandom_u32() < sample_threshold */
	FAULT_SEL_EVERY,	/* every Nth matched packet, counted across CPUs */
	FAULT_SEL_FIRST_PER_FLOW,	/* the first matched packet of each connection */
};

/* ttl_value meaning "random in 1..current" */
#define FAULT_TTL_RANDOM 256

/* TCP flag bits as in the header's 14th byte */
#define FAULT_TCP_FIN 0x01
#define FAULT_TCP_SYN 0x02
#define FAULT_TCP_RST 0x04
#define FAULT_TCP_PSH 0x08
#define FAULT_TCP_ACK 0x10
#define FAULT_TCP_URG 0x20
#define FAULT_TCP_ECE 0x40
#define FAULT_TCP_CWR 0x80

/* A connection, the same key for both directions: endpoint a is the lower
 * (address, port) of the two. IPv4 addresses sit in addr_*[0]. */
struct fault_flow {
	__u32 addr_a[4];
	__u32 addr_b[4];
	__u16 port_a;
	__u16 port_b;
	__u8 family;		/* 4 or 6 */
	__u8 protocol;
	__u16 _pad;
};

#endif

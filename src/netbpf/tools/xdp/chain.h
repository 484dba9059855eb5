/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between chain.bpf.c and netbpf/tools/xdp/kernel.py. */
#ifndef NETBPF_XDP_CHAIN_H
#define NETBPF_XDP_CHAIN_H

/* Slot 0 of xdp_chain is never used: key 0 of chain_next is the head. */
#define CHAIN_SLOTS 32
#define CHAIN_SOURCE_LEN 112

/* What `netbpf xdp chain list` shows of a slot. Slot 0 holds the chain's own
 * settings instead (`attach_type`: the expected attach type every program
 * in the chain was loaded with, so that they can tail-call each other). */
struct chain_entry {
	__u32 prog_id;
	__u32 attach_type;
	__u64 added;		/* wall-clock seconds */
	char source[CHAIN_SOURCE_LEN];	/* OBJ:SECTION it was loaded from */
};

#endif

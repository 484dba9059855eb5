// SPDX-License-Identifier: GPL-2.0
/* netbpf xdp chain: several XDP programs on one interface, one after another.
 *
 * The dispatcher stands on the interface's XDP hook and tail-calls the first
 * program of the chain. Each chained program is loaded by netbpf behind a
 * short wrapper (generated in Python, see wrap.py) that calls it as a
 * function and, when it returns XDP_PASS, tail-calls the next one; any other
 * verdict ends the chain. After the last one comes the program that was on
 * the interface before the chain (xdp_original), or XDP_PASS.
 *
 * The order lives in chain_next, a linked list of slots (key 0: the head),
 * so inserting or removing a program is one map update that every packet
 * sees either before or after, never half done. All maps are pinned: the
 * chain outlives the command that built it.
 */
#include <netbpf/common.h>
#include "chain.h"

NETBPF_BTF_EXPORT(chain_entry);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, CHAIN_SLOTS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xdp_chain SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} chain_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CHAIN_SLOTS);
	__type(key, __u32);
	__type(value, struct chain_entry);
} chain_info SEC(".maps");

NETBPF_XDP_ORIGINAL();

SEC("xdp")
int netbpf_xdp_disp(struct xdp_md *ctx)
{
	__u32 head = 0, *first = bpf_map_lookup_elem(&chain_next, &head);
	void *info = &chain_info;

	/* Not read here; referenced so that the kernel lists chain_info among the
	 * dispatcher's maps, where `netbpf status`/`cleanup` find every pin of a chain. */
	asm volatile("" : : "r"(info));

	if (first && *first)
		bpf_tail_call(ctx, &xdp_chain, *first);
	bpf_tail_call(ctx, &xdp_original, 0);
	return XDP_PASS;
}

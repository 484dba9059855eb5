// SPDX-License-Identifier: GPL-2.0
/* An XDP program the verifier refuses (reads the packet without a bounds
 * check): the failure comes only at load, after the chain's dispatcher was
 * built, and `netbpf xdp chain add` must undo that. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int unverifiable(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	return data[20] == 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

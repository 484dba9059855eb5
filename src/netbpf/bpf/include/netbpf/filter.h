/* SPDX-License-Identifier: GPL-2.0 */
/* A tcpdump filter expression, compiled into the program before load.
 *
 *	__u32 keep = netbpf_filter(data, data_end);
 *
 * returns 0 when the packet does not match, else how many bytes to keep (the
 * classic BPF return value: tcpdump's snap length). Until netbpf replaces it
 * (netbpf.bpf.inject.set_filter, from netbpf.packet.filter.compile_filter),
 * the stub returns `netbpf_filter_default`: every packet matches.
 *
 * Rules that the replacement relies on:
 *  - only programs in SEC("netbpf/xdp") or SEC("netbpf/tc") can be given a
 *    filter (netbpf registers those sections with libbpf and patches the
 *    relocated instructions just before the kernel sees them);
 *  - netbpf_filter must be the program's only BPF-to-BPF subprogram (use
 *    __always_inline for helpers; no bpf_loop callbacks in such programs);
 *  - pass packet pointers that the verifier knows: ctx->data/ctx->data_end
 *    (in tc, call bpf_skb_pull_data() first: only linear data is visible).
 */
#ifndef NETBPF_FILTER_H
#define NETBPF_FILTER_H

#include <linux/types.h>

const volatile __u32 netbpf_filter_default = 0xffffffff;

static __attribute__((noinline)) __u32 netbpf_filter(void *data, void *data_end)
{
	/* Both arguments are used so that the compiler keeps passing them in
	 * r1/r2; the volatile read keeps the result from being folded into
	 * the caller. Kept short: the replacement must not be shorter. */
	if (data > data_end)
		return 0;
	return netbpf_filter_default;
}

#endif /* NETBPF_FILTER_H */

// SPDX-License-Identifier: GPL-2.0
/* Not an XDP program: `netbpf xdp chain add` must refuse it before touching the hook. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

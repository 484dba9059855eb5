// SPDX-License-Identifier: GPL-2.0
/* A test program for netbpf xdp chain: counts ICMP over IPv4 in `icmp_seen`
 * and passes every packet (so the chain goes on). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} icmp_seen SEC(".maps");

static __attribute__((noinline)) int is_icmp(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > data_end)
		return 0;
	return eth->h_proto == bpf_htons(ETH_P_IP) && ip->protocol == IPPROTO_ICMP;
}

SEC("xdp")
int count_icmp(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *seen = bpf_map_lookup_elem(&icmp_seen, &key);

	if (seen && is_icmp((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		__sync_fetch_and_add(seen, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

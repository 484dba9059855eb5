// SPDX-License-Identifier: GPL-2.0
/* netbpf drops: every packet the kernel frees with a drop reason.
 *
 * skb:kfree_skb fires for every freed skb that was not consumed normally;
 * its reason (enum skb_drop_reason) says why. Two programs, one loaded:
 * netbpf_drop_btf on tp_btf/kfree_skb (typed arguments) and netbpf_drop_tp
 * on the classic tracepoint, for kernels without tp_btf. Both read the packet
 * with CO-RE and apply the same filters (const volatile globals, set before
 * load), then stream an event to the ring buffer and/or add it to the
 * in-kernel summary, so a drop storm costs a map update, not an event.
 */
#include <netbpf/common.h>
#include <bpf/bpf_tracing.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include "kernel.h"
#include "drops.h"

NETBPF_BTF_EXPORT(drop_event);
NETBPF_BTF_EXPORT(drop_key);
NETBPF_BTF_EXPORT(drop_count);
NETBPF_RINGBUF(events, 32 << 20);
NETBPF_COUNTERS(stats, DROP_STATS);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_key);
	__type(value, struct drop_count);
} summary SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, DROP_MAX_STACK * sizeof(__u64));
} stacks SEC(".maps");

struct drop_event_stack {
	struct drop_event e;
	__u64 stack[DROP_MAX_STACK];
};

/* What to do with a drop. */
const volatile __u8 stream = 1;		/* an event in the ring buffer */
const volatile __u8 summarise = 0;	/* a count in `summary` */
const volatile __u8 summary_flows = 0;	/* the summary key includes the flow */
const volatile __u8 want_stack = 0;
const volatile __u8 has_rx_sk = 0;	/* tp_btf/kfree_skb has its 4th argument */

/* Reasons that are not drops (SKB_NOT_DROPPED_YET, SKB_CONSUMED), from BTF. */
const volatile __u32 not_a_drop[2] = { ~0U, ~0U };

/* Filters; each is off until Python turns it on. */
const volatile __u32 filter_netns = 0;
const volatile __u32 filter_ifindex = 0;
const volatile __u8 filter_reasons = 0;
const volatile __u64 reason_mask[DROP_MAX_REASON / 64] = {};
const volatile __u8 filter_proto = 0;
const volatile __u8 proto_value = 0;
const volatile __u8 filter_family = 0;	/* 4 or 6: an address filter is on */
const volatile __u8 filter_prefix = 0;
const volatile __u8 filter_addr[16] = {};
const volatile __u8 filter_port = 0;
const volatile __u16 port_value = 0;

static __always_inline void parse_l4(const unsigned char *l4, struct drop_event *e)
{
	__u8 hdr[14];

	switch (e->l4_proto) {
	case IPPROTO_TCP:
		if (bpf_probe_read_kernel(hdr, 14, l4))
			return;
		e->tcp_flags = hdr[13];
		/* fall through: ports first */
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
		if (bpf_probe_read_kernel(hdr, 4, l4))
			return;
		e->sport = (hdr[0] << 8) | hdr[1];
		e->dport = (hdr[2] << 8) | hdr[3];
		return;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (bpf_probe_read_kernel(hdr, 2, l4))
			return;
		e->sport = hdr[0]; /* type */
		e->dport = hdr[1]; /* code */
		return;
	}
}

/* IPv4 or IPv6 header at skb->head + network_header, then TCP/UDP/ICMP. */
static __always_inline void parse_packet(struct sk_buff *skb, struct drop_event *e)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	unsigned char *ip = head + nh;
	__u8 first;

	e->eth_proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (!head || nh == 0xffff || bpf_probe_read_kernel(&first, 1, ip))
		return;
	if ((first >> 4) == 4 && (e->eth_proto == ETH_P_IP || !e->eth_proto)) {
		struct iphdr iph;

		if (bpf_probe_read_kernel(&iph, sizeof(iph), ip) || iph.ihl < 5)
			return;
		e->family = 4;
		e->ip_len = bpf_ntohs(iph.tot_len);
		e->l4_proto = iph.protocol;
		__builtin_memcpy(e->saddr, &iph.saddr, 4);
		__builtin_memcpy(e->daddr, &iph.daddr, 4);
		if (bpf_ntohs(iph.frag_off) & 0x1fff)
			return; /* not the first fragment: no L4 header */
		parse_l4(ip + iph.ihl * 4, e);
	} else if ((first >> 4) == 6 && (e->eth_proto == ETH_P_IPV6 || !e->eth_proto)) {
		struct ipv6hdr ip6;
		unsigned char *l4 = ip + sizeof(ip6);
		__u8 next, ext[2];

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), ip))
			return;
		e->family = 6;
		e->ip_len = bpf_ntohs(ip6.payload_len) + sizeof(ip6);
		__builtin_memcpy(e->saddr, &ip6.saddr, 16);
		__builtin_memcpy(e->daddr, &ip6.daddr, 16);
		next = ip6.nexthdr;
		/* A few extension headers (hop-by-hop, routing, destination options). */
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (next != 0 && next != 43 && next != 60)
				break;
			if (bpf_probe_read_kernel(ext, 2, l4))
				return;
			next = ext[0];
			l4 += (ext[1] + 1) * 8;
		}
		e->l4_proto = next;
		if (next == 44) /* fragment header: ports only in the first */
			return;
		parse_l4(l4, e);
	}
}

static __always_inline int addr_match(const __u8 *addr)
{
	int prefix = filter_prefix;

#pragma unroll
	for (int i = 0; i < 16; i++) {
		int bits = prefix - i * 8;
		__u8 mask;

		if (bits <= 0)
			break;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[i] ^ filter_addr[i]) & mask)
			return 0;
	}
	return 1;
}

static __always_inline int flow_match(const struct drop_event *e)
{
	if (filter_proto && e->l4_proto != proto_value)
		return 0;
	if (filter_family && (e->family != filter_family ||
			      !(addr_match(e->saddr) || addr_match(e->daddr))))
		return 0;
	if (filter_port && e->sport != port_value && e->dport != port_value)
		return 0;
	return 1;
}

static __always_inline void add_to_summary(void *ctx, const struct drop_event *e)
{
	struct drop_key key = {};
	struct drop_count *count, zero = {};

	key.location = e->location;
	key.reason = e->reason;
	key.netns = e->netns;
	key.ifindex = e->ifindex;
	key.stack_id = -1;
	if (summary_flows) {
		key.family = e->family;
		key.l4_proto = e->l4_proto;
		key.sport = e->sport;
		key.dport = e->dport;
		__builtin_memcpy(key.saddr, e->saddr, 16);
		__builtin_memcpy(key.daddr, e->daddr, 16);
	}
	if (want_stack) {
		key.stack_id = bpf_get_stackid(ctx, &stacks, 0);
		if (key.stack_id < 0)
			netbpf_inc(stats, DROP_STAT_STACK_LOST);
	}
	count = bpf_map_lookup_elem(&summary, &key);
	if (!count) {
		bpf_map_update_elem(&summary, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&summary, &key);
		if (!count) {
			netbpf_inc(stats, DROP_STAT_SUMMARY_FULL);
			return;
		}
	}
	/* Per-CPU values: plain adds, no atomics. */
	count->packets++;
	count->bytes += e->ip_len ? e->ip_len : e->len;
}

static __always_inline void emit(void *ctx, struct drop_event *e)
{
	if (want_stack) {
		struct drop_event_stack *rec = netbpf_reserve(events, sizeof(*rec));
		long n;

		if (!rec)
			return;
		rec->e = *e;
		n = bpf_get_stack(ctx, rec->stack, sizeof(rec->stack), 0);
		if (n < 0) {
			netbpf_inc(stats, DROP_STAT_STACK_LOST);
			n = 0;
		}
		rec->e.stack_bytes = n;
		bpf_ringbuf_submit(rec, 0);
		return;
	}
	netbpf_output(events, e, sizeof(*e));
}

static __always_inline int handle(void *ctx, struct sk_buff *skb, __u64 location,
				  __u32 reason, struct sock *rx_sk, __u8 hook)
{
	struct drop_event e = {};
	struct net_device *dev;

	if (reason == not_a_drop[0] || reason == not_a_drop[1])
		return 0;
	if (filter_reasons &&
	    (reason >= DROP_MAX_REASON || !((reason_mask[reason / 64] >> (reason % 64)) & 1)))
		goto filtered;
	dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		e.ifindex = BPF_CORE_READ(dev, ifindex);
		e.netns = dev_netns(dev);
	}
	/* No device (a socket's queue, a packet being built): the socket's namespace. */
	if (!e.netns)
		e.netns = sock_netns(rx_sk);
	if (!e.netns)
		e.netns = sock_netns(BPF_CORE_READ(skb, sk));
	if (filter_netns && e.netns != filter_netns)
		goto filtered;
	if (filter_ifindex && e.ifindex != filter_ifindex)
		goto filtered;
	parse_packet(skb, &e);
	if (!flow_match(&e))
		goto filtered;

	e.ts_ns = bpf_ktime_get_ns();
	e.location = location;
	e.reason = reason;
	e.len = BPF_CORE_READ(skb, len);
	e.hook = hook;
	netbpf_inc(stats, DROP_STAT_SEEN);
	if (summarise)
		add_to_summary(ctx, &e);
	if (stream)
		emit(ctx, &e);
	return 0;
filtered:
	netbpf_inc(stats, DROP_STAT_FILTERED);
	return 0;
}

/* tp_btf/kfree_skb(struct sk_buff *skb, void *location,
 *                  enum skb_drop_reason reason, struct sock *rx_sk)
 * rx_sk (Linux 6.11) is read only where the kernel passes it: the verifier
 * refuses a read past the last argument, even in code that never runs, so the
 * read sits behind a constant the verifier prunes. */
SEC("tp_btf/kfree_skb")
int netbpf_drop_btf(__u64 *ctx)
{
	struct sock *rx_sk = NULL;

	if (has_rx_sk)
		rx_sk = (struct sock *)((volatile __u64 *)ctx)[3];
	return handle(ctx, (struct sk_buff *)ctx[0], ctx[1], (__u32)ctx[2], rx_sk,
		      DROP_HOOK_TP_BTF);
}

SEC("tracepoint/skb/kfree_skb")
int netbpf_drop_tp(struct trace_event_raw_kfree_skb *args)
{
	struct sock *rx_sk = NULL;

	if (bpf_core_field_exists(args->rx_sk))
		rx_sk = BPF_CORE_READ(args, rx_sk);
	return handle(args, BPF_CORE_READ(args, skbaddr), (__u64)BPF_CORE_READ(args, location),
		      BPF_CORE_READ(args, reason), rx_sk, DROP_HOOK_TRACEPOINT);
}

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
#include <netbpf/kernel.h>
#include <netbpf/scope.h>
#include "drops.h"

NETBPF_BTF_EXPORT(drop_event);
NETBPF_BTF_EXPORT(drop_where);
NETBPF_BTF_EXPORT(drop_key);
NETBPF_BTF_EXPORT(drop_count);
NETBPF_BTF_EXPORT(drop_slot);
NETBPF_RINGBUF(events, 32 << 20);
NETBPF_COUNTERS(stats, DROP_STATS);

/* Counts by (reason, location, namespace, interface[, stack]), or with
 * --by-flow by flow too; Python sizes the one not in use to a single entry. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_where);
	__type(value, struct drop_count);
} summary SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_key);
	__type(value, struct drop_count);
} flow_summary SEC(".maps");

/* In front of both: a direct-mapped cache per CPU. A drop storm repeats a few
 * keys; each finds its slot with an array index and adds there, without the
 * hash map's lookup. A key whose slot another key owns goes to the hash map.
 * Each packet is counted in exactly one place; Python adds them up. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_SLOTS);
	__type(key, __u32);
	__type(value, struct drop_slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, DROP_MAX_STACK * sizeof(__u64));
} stacks SEC(".maps");

_Static_assert(sizeof(struct drop_key) % 8 == 0 && sizeof(struct drop_where) % 8 == 0,
	       "slot_of() and same_key() read whole words");

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
const volatile __u32 filter_ifindex = 0;
const volatile __u8 filter_reasons = 0;
const volatile __u64 reason_mask[DROP_MAX_REASON / 64] = {};
const volatile __u8 filter_proto = 0;
const volatile __u8 proto_value = 0;

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

/* What the handler needs from the skb, loaded once, the cheapest way each hook allows. */
struct skb_fields {
	unsigned char *head;
	__u32 ifindex;
	__u32 netns;
	__u32 len;		/* skb->len */
	__u32 l3_len;		/* bytes from the network header to the end of the data */
	__u16 network_header;
	__u16 protocol;
	__u64 sk_cookie;
	__u32 sk_side;
};

/* The summary counts bytes without reading the packet: from the network header
 * to the end of the data (the IP packet; before ip_rcv() trims it, a short
 * frame's link-layer padding too). */
static __always_inline __u32 l3_len(const unsigned char *head, const unsigned char *data,
				    __u16 network_header, __u32 len)
{
	long before = (long)(head + network_header) - (long)data;

	if (!head || network_header == 0xffff || before < -0xffff || before > 0xffff ||
	    (long)len - before < 0)
		return len;
	return len - before;
}

/* tp_btf: the arguments are typed kernel pointers. Plain loads through them are
 * checked by the verifier and made fault-safe by the JIT (a NULL or stale
 * pointer reads as 0), without a helper call each: a drop storm costs less. */
static __always_inline void load_btf(struct sk_buff *skb, struct sock *rx_sk, struct skb_fields *f)
{
	struct net_device *dev = skb->dev;
	struct sock *sk;

	f->head = skb->head;
	f->network_header = skb->network_header;
	f->protocol = bpf_ntohs(skb->protocol);
	f->len = skb->len;
	f->l3_len = l3_len(f->head, skb->data, f->network_header, f->len);
	if (dev) {
		f->ifindex = dev->ifindex;
		f->netns = dev->nd_net.net->ns.inum;
	}
	/* No device (a socket's queue, a packet being built): the socket's namespace. */
	if (!f->netns && rx_sk)
		f->netns = rx_sk->__sk_common.skc_net.net->ns.inum;
	sk = skb->sk;
	if (rx_sk) {
		f->sk_cookie = rx_sk->__sk_common.skc_cookie.counter;
		f->sk_side = DROP_SK_RX;
	} else if (sk) {
		f->sk_cookie = sk->__sk_common.skc_cookie.counter;
		f->sk_side = DROP_SK_SKB;
	}
	if (!f->netns && sk)
		f->netns = sk->__sk_common.skc_net.net->ns.inum;
	/* Neither: a drop in a system call that already took the packet off its
	 * socket (udp_recvmsg's checksum check, for one). That runs in the
	 * receiving process, whose namespace is the packet's. */
	if (!f->netns)
		f->netns = bpf_get_current_task_btf()->nsproxy->net_ns->ns.inum;
}

/* The classic tracepoint hands out addresses only: every read is a probe read. */
static __always_inline void load_probe(struct sk_buff *skb, struct sock *rx_sk, struct skb_fields *f)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);

	f->head = BPF_CORE_READ(skb, head);
	f->network_header = BPF_CORE_READ(skb, network_header);
	f->protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	f->len = BPF_CORE_READ(skb, len);
	f->l3_len = l3_len(f->head, BPF_CORE_READ(skb, data), f->network_header, f->len);
	if (dev) {
		f->ifindex = BPF_CORE_READ(dev, ifindex);
		f->netns = dev_netns(dev);
	}
	if (!f->netns)
		f->netns = sock_netns(rx_sk);
	if (!f->netns)
		f->netns = sock_netns(BPF_CORE_READ(skb, sk));
	if (rx_sk) {
		f->sk_cookie = BPF_CORE_READ(rx_sk, __sk_common.skc_cookie.counter);
		f->sk_side = DROP_SK_RX;
	} else if (BPF_CORE_READ(skb, sk)) {
		f->sk_cookie = BPF_CORE_READ(skb, sk, __sk_common.skc_cookie.counter);
		f->sk_side = DROP_SK_SKB;
	}
	if (!f->netns)	/* see load_btf */
		f->netns = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), nsproxy, net_ns, ns.inum);
}

/* IPv4 or IPv6 header at skb->head + network_header; with `ports`, TCP/UDP/ICMP too. */
static __always_inline void parse_packet(const struct skb_fields *f, struct drop_event *e, int ports)
{
	unsigned char *ip = f->head + f->network_header;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
		__u8 first;
	} h;

	e->eth_proto = f->protocol;
	if (!f->head || f->network_header == 0xffff)
		return;
	/* One read covers either header; a short one (end of the buffer) fails and says nothing. */
	if (bpf_probe_read_kernel(&h, sizeof(h.v4), ip))
		return;
	if ((h.first >> 4) == 4 && (e->eth_proto == ETH_P_IP || !e->eth_proto)) {
		if (h.v4.ihl < 5)
			return;
		e->family = 4;
		e->ip_len = bpf_ntohs(h.v4.tot_len);
		e->l4_proto = h.v4.protocol;
		__builtin_memcpy(e->saddr, &h.v4.saddr, 4);
		__builtin_memcpy(e->daddr, &h.v4.daddr, 4);
		if (!ports || (bpf_ntohs(h.v4.frag_off) & 0x1fff))
			return; /* not the first fragment: no L4 header */
		parse_l4(ip + h.v4.ihl * 4, e);
	} else if ((h.first >> 4) == 6 && (e->eth_proto == ETH_P_IPV6 || !e->eth_proto)) {
		unsigned char *l4 = ip + sizeof(h.v6);
		__u8 next, ext[2];

		if (bpf_probe_read_kernel(&h, sizeof(h.v6), ip))
			return;
		e->family = 6;
		e->ip_len = bpf_ntohs(h.v6.payload_len) + sizeof(h.v6);
		__builtin_memcpy(e->saddr, &h.v6.saddr, 16);
		__builtin_memcpy(e->daddr, &h.v6.daddr, 16);
		next = h.v6.nexthdr;
		e->l4_proto = next;
		if (!ports)
			return;
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

/* Words of the key in use: without flows, only `where` (the rest stays zero). */
#define KEY_WORDS (summary_flows ? sizeof(struct drop_key) / 8 : sizeof(struct drop_where) / 8)

static __always_inline __u32 slot_of(const struct drop_key *k)
{
	const __u64 *w = (const __u64 *)k;
	__u64 h = 0;

#pragma unroll
	for (int i = 0; i < sizeof(*k) / 8; i++) {
		if (i >= KEY_WORDS)
			break;
		h = (h ^ w[i]) * 0x9E3779B97F4A7C15ULL;
	}
	return (h >> 32) & (DROP_SLOTS - 1);
}

static __always_inline int same_key(const struct drop_key *a, const struct drop_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	__u64 diff = 0;

#pragma unroll
	for (int i = 0; i < sizeof(*a) / 8; i++) {
		if (i >= KEY_WORDS)
			break;
		diff |= x[i] ^ y[i];
	}
	return !diff;
}

static __always_inline void add_to_summary(void *ctx, const struct drop_event *e, __u32 bytes)
{
	struct drop_key key = {};
	struct drop_count *count, zero = {};
	void *map = summary_flows ? (void *)&flow_summary : (void *)&summary;
	struct drop_slot *slot;
	__u32 slot_index;

	key.where.location = e->location;
	key.where.reason = e->reason;
	key.where.netns = e->netns;
	key.where.ifindex = e->ifindex;
	key.where.stack_id = -1;
	if (summary_flows) {
		key.family = e->family;
		key.l4_proto = e->l4_proto;
		key.sport = e->sport;
		key.dport = e->dport;
		__builtin_memcpy(key.saddr, e->saddr, 16);
		__builtin_memcpy(key.daddr, e->daddr, 16);
	}
	if (want_stack) {
		key.where.stack_id = bpf_get_stackid(ctx, &stacks, 0);
		if (key.where.stack_id < 0)
			netbpf_inc(stats, DROP_STAT_STACK_LOST);
	}
	slot_index = slot_of(&key);
	slot = bpf_map_lookup_elem(&slots, &slot_index);
	if (slot) {
		if (!slot->count.packets) {
			__builtin_memcpy(&slot->key, &key, sizeof(key)); /* free: take it */
			count = &slot->count;
			goto add;
		}
		if (same_key(&slot->key, &key)) {
			count = &slot->count;
			goto add;
		}
	}
	/* summary's key is key.where, the first bytes of key. */
	count = bpf_map_lookup_elem(map, &key);
	if (!count) {
		bpf_map_update_elem(map, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(map, &key);
		if (!count) {
			netbpf_inc(stats, DROP_STAT_SUMMARY_FULL);
			return;
		}
	}
add:
	/* Per-CPU values: plain adds, no atomics. */
	count->packets++;
	count->bytes += bytes;
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
		bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
		return;
	}
	/* No wake-up per event: the reader polls the ring every 20 ms (stream.py).
	 * Waking it costs an interrupt per drop whenever it has caught up, which a
	 * storm of drops paid for in the flood's own CPU time. */
	if (bpf_ringbuf_output(&events, e, sizeof(*e), BPF_RB_NO_WAKEUP))
		netbpf_inc(events_lost, 0);
}

static __always_inline int handle(void *ctx, const struct skb_fields *f, __u64 location,
				  __u32 reason, __u8 hook)
{
	struct drop_event e = {};

	if (filter_netns && f->netns != filter_netns)
		goto filtered;
	if (filter_ifindex && f->ifindex != filter_ifindex)
		goto filtered;
	/* The packet is read only when something needs it: a summary by reason
	 * and location never does, so a drop storm costs no read at all. */
	if (stream || summary_flows || filter_family || filter_proto || filter_port) {
		parse_packet(f, &e, stream || summary_flows || filter_port || filter_proto);
		if (!flow_match(&e))
			goto filtered;
	}

	e.location = location;
	e.reason = reason;
	e.netns = f->netns;
	e.ifindex = f->ifindex;
	e.len = f->len;
	e.hook = hook;
	e.sk_cookie = f->sk_cookie;
	e.sk_side = f->sk_side;
	netbpf_inc(stats, DROP_STAT_SEEN);
	if (summarise)
		add_to_summary(ctx, &e, f->l3_len);
	if (stream) {
		e.ts_ns = bpf_ktime_get_ns();
		emit(ctx, &e);
	}
	return 0;
filtered:
	netbpf_inc(stats, DROP_STAT_FILTERED);
	return 0;
}

static __always_inline int is_drop(__u32 reason)
{
	__u32 word;

	if (reason == not_a_drop[0] || reason == not_a_drop[1])
		return 0;
	if (!filter_reasons)
		return 1;
	word = reason / 64;
	barrier_var(word); /* index with the value just checked, not its 64-bit source */
	if (word < DROP_MAX_REASON / 64 && ((reason_mask[word] >> (reason % 64)) & 1))
		return 1;
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
	struct skb_fields f = {};
	struct sock *rx_sk = NULL;
	__u32 reason = ctx[2];

	if (!is_drop(reason))
		return 0;
	if (has_rx_sk)
		rx_sk = (struct sock *)((volatile __u64 *)ctx)[3];
	load_btf((struct sk_buff *)ctx[0], rx_sk, &f);
	return handle(ctx, &f, ctx[1], reason, DROP_HOOK_TP_BTF);
}

SEC("tracepoint/skb/kfree_skb")
int netbpf_drop_tp(struct trace_event_raw_kfree_skb *args)
{
	struct skb_fields f = {};
	struct sock *rx_sk = NULL;
	__u32 reason = BPF_CORE_READ(args, reason);

	if (!is_drop(reason))
		return 0;
	if (bpf_core_field_exists(args->rx_sk))
		rx_sk = BPF_CORE_READ(args, rx_sk);
	load_probe(BPF_CORE_READ(args, skbaddr), rx_sk, &f);
	return handle(args, &f, (__u64)BPF_CORE_READ(args, location), reason, DROP_HOOK_TRACEPOINT);
}

/* The hook alone: attached by bench/drops_flood.py to measure what any program
 * on kfree_skb costs (the tracepoint's dispatch), the anchor for ours. */
SEC("tp_btf/kfree_skb")
int netbpf_drop_nop(__u64 *ctx)
{
	return 0;
}

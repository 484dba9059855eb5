// SPDX-License-Identifier: GPL-2.0
/* netbpf fault: mangle, drop or duplicate chosen packets.
 *
 * One program per hook kind: netbpf_faultxdp (XDP, ingress) and
 * netbpf_fault_tc (tcx or cls_bpf, ingress or egress). Both run the same
 * steps: the tcpdump expression (netbpf_filter), "does the action apply",
 * the selection (sample, every Nth, first per connection, limit), then the
 * action. Everything is configured through const volatile globals before
 * load, so the verifier prunes the branches of the actions not chosen.
 *
 * Checksums. In XDP the packet is what came off the wire: checksums are
 * updated incrementally (RFC 1624). In tc an skb may carry CHECKSUM_PARTIAL
 * (the L4 checksum field holds only the pseudo-header sum, and the NIC or
 * skb_checksum_help() completes it later) or CHECKSUM_COMPLETE (skb->csum
 * covers the data); bpf_l3_csum_replace()/bpf_l4_csum_replace() handle
 * every state, so tc never edits a checksum field by hand.
 *
 * netbpf_filter() must stay the only BPF-to-BPF subprogram (netbpf/filter.h):
 * every other function here is __always_inline, and no callbacks.
 */
#include <netbpf/common.h>
#include <netbpf/filter.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include "fault.h"

/* Offsets are masked before they meet a packet pointer: the verifier only
 * trusts a bounds check when the offset is known to stay far below 64 KiB.
 * The mask is an asm statement because clang drops a plain `&` whenever it
 * can prove it redundant, which the verifier (tracking a 32-bit spill) cannot. */
#define OFF_MASK 0x3fff
static __always_inline void *pkt_at(void *data, __u64 off)
{
	asm volatile("%0 &= 0x3fff" : "+r"(off));
	return data + off;
}
/* tc: bytes made linear when the headers are not (the expression then sees them). */
#define TC_PULL_LEN 256
#define MAX_CORRUPT 64
/* skb->tc_index of a clone made by `duplicate`, so that it passes untouched
 * when it comes through the same hook again. */
#define DUP_MARK 0xfa17
#define CSUM_PERTURB 0x5a5a

NETBPF_BTF_EXPORT(fault_flow);
NETBPF_COUNTERS(counters, FAULT_COUNTERS);

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fault_flow);
	__type(value, __u8);
} flows SEC(".maps");

/* The inputs of the corrupt loop, written and read back: a value read from a
 * map is unknown to the verifier, so every parse path (VLANs, IPv6 extension
 * headers, protocols) reaches the loop in the same state and the loop is
 * verified once instead of once per path (which exceeds the 1M-insn limit). */
struct corrupt_plan {
	__u32 l4;
	__u32 check;	/* offset of the L4 checksum */
	__u32 start;	/* first byte to flip */
	__u32 n;	/* bytes to flip */
	__u32 no_csum;	/* UDP over IPv4 without a checksum */
	__u32 udp;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct corrupt_plan);
} corrupt_scratch SEC(".maps");

static __always_inline struct corrupt_plan *corrupt_plan(__u32 l4, __u32 check, __u32 start,
							 __u32 n, __u32 no_csum, __u32 udp)
{
	__u32 key = 0;
	struct corrupt_plan *plan = bpf_map_lookup_elem(&corrupt_scratch, &key);

	if (!plan)
		return 0;
	plan->l4 = l4;
	plan->check = check;
	plan->start = start;
	plan->n = n;
	plan->no_csum = no_csum;
	plan->udp = udp;
	asm volatile("" ::: "memory");	/* read the fields back from the map */
	return plan;
}

const volatile __u32 fault_action = 0;
const volatile __u32 select_mode = FAULT_SEL_ALL;
const volatile __u64 sample_threshold = 1ULL << 32;	/* hit when prandom_u32 < this */
const volatile __u64 every_nth = 1;
const volatile __u64 hit_limit = 0;			/* 0: no limit */
const volatile __u32 ttl_value = FAULT_TTL_RANDOM;
const volatile __u32 tcp_set = 0;
const volatile __u32 tcp_clear = 0;
const volatile __u32 tcp_skip = 0;
const volatile __u32 corrupt_len = 1;
const volatile __u32 corrupt_keep_csum = 0;
const volatile __u32 tc_ingress = 0;			/* where duplicates are sent */

/* tc: what the expression reads, from its classic program (kernel.py), so
 * that only those bytes are made linear, and only when they are not. */
const volatile __u32 filter_abs_end = 0;	/* end of the furthest load at a fixed offset */
const volatile __u32 filter_ind_end = 0;	/* ... at an offset after X (0: no such load) */
const volatile __u32 filter_x_max = 0;		/* the largest X can be */
const volatile __u32 filter_x_ipv4 = 0;		/* X is the IPv4 header length (ldx 4*([14]&0xf)) */
const volatile __u32 filter_whole = 0;		/* `len` or an unknown X: every byte */

/* Shared by all CPUs, updated atomically: --every and --limit are exact. */
__u64 matched_seq = 0;
__u64 hit_seq = 0;

struct packet {
	__u32 l3;	/* offset of the IP header */
	__u32 l4;	/* offset of the transport header; 0: none (a later fragment) */
	__u32 end;	/* where the IP packet ends: its own length, capped to the frame */
	__u8 family;	/* 4, 6; 0: not IP */
	__u8 protocol;
	__u8 ttl;
	__u8 tcp_flags;
	__u32 ip_hlen;	/* IPv4 header length */
};

/* -- parsing ------------------------------------------------------------------ */

static __always_inline int parse(void *data, void *data_end, __u32 frame_len, struct packet *pkt)
{
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if (data + off + 4 > data_end)
			return -1;
		proto = *(__u16 *)(data + off + 2);
		off += 4;
	}
	pkt->l3 = off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		__u32 hlen, len;

		if ((void *)(ip + 1) > data_end)
			return -1;
		hlen = ip->ihl * 4;
		len = bpf_ntohs(ip->tot_len);
		if (len == 0)	/* BIG TCP: a GSO packet longer than 64 KiB */
			len = frame_len - off;
		if (hlen < sizeof(*ip) || len < hlen)
			return -1;
		pkt->family = 4;
		pkt->ip_hlen = hlen;
		pkt->protocol = ip->protocol;
		pkt->ttl = ip->ttl;
		pkt->l4 = (ip->frag_off & bpf_htons(0x1fff)) ? 0 : off + hlen;
		pkt->end = off + len;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		__u32 l4 = off + sizeof(*ip6), len;
		__u8 next;
		int later_fragment = 0;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		next = ip6->nexthdr;
		len = bpf_ntohs(ip6->payload_len);
		len = len ? len + sizeof(*ip6) : frame_len - off;	/* 0: jumbogram */
		pkt->ttl = ip6->hop_limit;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 *h;

			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
			    next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			h = pkt_at(data, l4);
			if ((void *)(h + 8) > data_end)
				return -1;
			if (next == IPPROTO_FRAGMENT) {
				if (*(__u16 *)(h + 2) & bpf_htons(0xfff8))
					later_fragment = 1;
				l4 += 8;
			} else if (next == IPPROTO_AH) {
				l4 += (h[1] + 2) * 4;
			} else {
				l4 += (h[1] + 1) * 8;
			}
			next = h[0];
		}
		pkt->family = 6;
		pkt->protocol = next;
		pkt->l4 = later_fragment ? 0 : l4;
		pkt->end = off + len;
	} else {
		return -1;
	}
	if (pkt->end > frame_len)
		pkt->end = frame_len;
	if (pkt->protocol == IPPROTO_TCP && pkt->l4) {
		__u8 *th = pkt_at(data, pkt->l4);

		if ((void *)(th + 20) > data_end || pkt->l4 + 20 > pkt->end)
			return -1;
		pkt->tcp_flags = th[13];
	} else if (pkt->l4 && (pkt->protocol == IPPROTO_UDP || pkt->protocol == IPPROTO_ICMP ||
				pkt->protocol == IPPROTO_ICMPV6)) {
		if (pkt_at(data, pkt->l4) + 8 > data_end)
			return -1;
	}
	return 0;
}

static __always_inline __u8 tcp_flags_after(__u8 flags)
{
	if (fault_action == FAULT_ACT_RST)
		return FAULT_TCP_RST | (flags & FAULT_TCP_ACK);
	return (flags & ~tcp_clear) | tcp_set;
}

/* Where the L4 checksum sits and where the payload starts; 0 if unknown. */
static __always_inline __u32 csum_offset(const struct packet *pkt)
{
	switch (pkt->protocol) {
	case IPPROTO_TCP:
		return pkt->l4 + 16;
	case IPPROTO_UDP:
		return pkt->l4 + 6;
	case IPPROTO_ICMP:
		return pkt->family == 4 ? pkt->l4 + 2 : 0;
	case IPPROTO_ICMPV6:
		return pkt->family == 6 ? pkt->l4 + 2 : 0;
	}
	return 0;
}

static __always_inline __u32 payload_offset(void *data, void *data_end, const struct packet *pkt)
{
	if (pkt->protocol == IPPROTO_TCP) {
		__u8 *th = pkt_at(data, pkt->l4);

		if ((void *)(th + 13) > data_end)
			return 0;
		return pkt->l4 + (th[12] >> 4) * 4;
	}
	return pkt->l4 + 8;	/* UDP header; ICMP type, code, checksum and 4 more */
}

/* The bytes corrupt may flip: the payload up to its last whole 16-bit word
 * (counted from the L4 header, as the checksum counts), so that each flip
 * changes exactly one checksum word and the loop needs no branches. */
static __always_inline __u32 corrupt_end(const struct packet *pkt, __u32 end)
{
	return pkt->l4 + ((end - pkt->l4) & ~1U);
}

/* Can the action do something to this packet? (drop and duplicate take anything) */
static __always_inline int applies(void *data, void *data_end, const struct packet *pkt, int is_ip)
{
	switch (fault_action) {
	case FAULT_ACT_DROP:
	case FAULT_ACT_DUPLICATE:
		return 1;
	case FAULT_ACT_TTL:
		return is_ip && (ttl_value != FAULT_TTL_RANDOM || pkt->ttl > 0);
	case FAULT_ACT_TCP_FLAGS:
	case FAULT_ACT_RST:
		if (!is_ip || pkt->protocol != IPPROTO_TCP || !pkt->l4)
			return 0;
		if (fault_action == FAULT_ACT_RST)
			return !(pkt->tcp_flags & FAULT_TCP_RST);
		return !(pkt->tcp_flags & tcp_skip) && tcp_flags_after(pkt->tcp_flags) != pkt->tcp_flags;
	case FAULT_ACT_CORRUPT: {
		__u32 payload;

		if (!is_ip || !pkt->l4 || !csum_offset(pkt))
			return 0;
		payload = payload_offset(data, data_end, pkt);
		return payload && payload < corrupt_end(pkt, pkt->end);
	}
	}
	return 0;
}

/* applies(), counted: a packet the action can do nothing to is skipped, any
 * other matched (whether --ratio and the rest then select it or not). */
static __always_inline int matched(void *data, void *data_end, const struct packet *pkt, int is_ip)
{
	if (!applies(data, data_end, pkt, is_ip)) {
		netbpf_inc(counters, FAULT_SKIPPED);
		return 0;
	}
	netbpf_inc(counters, FAULT_MATCHED);
	return 1;
}

/* -- selection ---------------------------------------------------------------- */

static __always_inline void flow_of(void *data, void *data_end, const struct packet *pkt,
				    struct fault_flow *key)
{
	__u32 a[4] = {}, b[4] = {};
	__u16 pa = 0, pb = 0;
	int swap = 0;

	__builtin_memset(key, 0, sizeof(*key));
	key->family = pkt->family;
	key->protocol = pkt->protocol;
	if (pkt->family == 4) {
		struct iphdr *ip = pkt_at(data, pkt->l3);

		if ((void *)(ip + 1) > data_end)
			return;
		a[0] = ip->saddr;
		b[0] = ip->daddr;
	} else if (pkt->family == 6) {
		struct ipv6hdr *ip6 = pkt_at(data, pkt->l3);

		if ((void *)(ip6 + 1) > data_end)
			return;
		__builtin_memcpy(a, &ip6->saddr, 16);
		__builtin_memcpy(b, &ip6->daddr, 16);
	} else {
		return;	/* everything that is not IP is one "connection" */
	}
	if (pkt->l4) {
		__u16 *l4 = pkt_at(data, pkt->l4);

		if ((void *)(l4 + 4) <= data_end) {
			if (pkt->protocol == IPPROTO_TCP || pkt->protocol == IPPROTO_UDP) {
				pa = l4[0];
				pb = l4[1];
			} else if (pkt->protocol == IPPROTO_ICMP || pkt->protocol == IPPROTO_ICMPV6) {
				pa = pb = l4[2];	/* echo identifier */
			}
		}
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (a[i] != b[i]) {
			swap = bpf_ntohl(a[i]) > bpf_ntohl(b[i]);
			break;
		}
		if (i == 3)
			swap = bpf_ntohs(pa) > bpf_ntohs(pb);
	}
	if (swap) {
		__builtin_memcpy(key->addr_a, b, 16);
		__builtin_memcpy(key->addr_b, a, 16);
		key->port_a = pb;
		key->port_b = pa;
	} else {
		__builtin_memcpy(key->addr_a, a, 16);
		__builtin_memcpy(key->addr_b, b, 16);
		key->port_a = pa;
		key->port_b = pb;
	}
}

static __always_inline int selected(void *data, void *data_end, const struct packet *pkt)
{
	if (select_mode == FAULT_SEL_SAMPLE) {
		if (sample_threshold < (1ULL << 32) && bpf_get_prandom_u32() >= sample_threshold)
			return 0;
	} else if (select_mode == FAULT_SEL_EVERY) {
		if ((__sync_fetch_and_add(&matched_seq, 1) + 1) % every_nth)
			return 0;
	} else if (select_mode == FAULT_SEL_FIRST_PER_FLOW) {
		struct fault_flow key;
		__u8 seen = 1;

		flow_of(data, data_end, pkt, &key);
		if (bpf_map_lookup_elem(&flows, &key))
			return 0;
		/* Two CPUs may race here: only the one that inserts the flow hits. */
		if (bpf_map_update_elem(&flows, &key, &seen, BPF_NOEXIST))
			return 0;
	}
	if (hit_limit && __sync_fetch_and_add(&hit_seq, 1) >= hit_limit)
		return 0;
	return 1;
}

static __always_inline __u8 new_ttl(__u8 current)
{
	if (ttl_value != FAULT_TTL_RANDOM)
		return ttl_value;
	return bpf_get_prandom_u32() % current + 1;
}

static __always_inline __u8 flip_mask(void)
{
	return bpf_get_prandom_u32() % 255 + 1;
}

/* -- XDP: the packet as it came off the wire ------------------------------------ */

/* RFC 1624: HC' = ~(~HC + ~m + m'), on 16-bit words as they sit in memory. */
static __always_inline void csum_replace16(__u16 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*check + (__u16)~old + (__u32)new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	*check = ~sum;
}

static __always_inline int xdp_ttl(void *data, void *data_end, const struct packet *pkt)
{
	__u32 l3 = pkt->l3 & 0x3f;

	if (pkt->family == 4) {
		struct iphdr *ip = data + l3;
		__u16 old;

		if ((void *)(ip + 1) > data_end)
			return -1;
		old = *(__u16 *)&ip->ttl;	/* the word (ttl, protocol) */
		ip->ttl = new_ttl(ip->ttl);
		csum_replace16(&ip->check, old, *(__u16 *)&ip->ttl);
	} else {
		struct ipv6hdr *ip6 = data + l3;	/* no header checksum */

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		ip6->hop_limit = new_ttl(ip6->hop_limit);
	}
	return 0;
}

static __always_inline int xdp_tcp_flags(void *data, void *data_end, const struct packet *pkt)
{
	__u8 *th = pkt_at(data, pkt->l4);
	__u16 old;

	if ((void *)(th + 20) > data_end)
		return -1;
	old = *(__u16 *)(th + 12);	/* the word (data offset, flags) */
	th[13] = tcp_flags_after(th[13]);
	csum_replace16((__u16 *)(th + 16), old, *(__u16 *)(th + 12));
	return 0;
}

/* Where the n flipped bytes start: a random place in [start, end - n]. */
static __always_inline __u32 corrupt_start(__u32 start, __u32 end, __u32 *n)
{
	__u32 len = end - start;

	if (*n > len)
		*n = len;
	return start + bpf_get_prandom_u32() % (len - *n + 1);
}

static __always_inline int xdp_corrupt(struct xdp_md *ctx, void *data, void *data_end,
				       const struct packet *pkt)
{
	__u32 start = payload_offset(data, data_end, pkt), end = pkt->end, n = corrupt_len;
	__u16 *check = pkt_at(data, csum_offset(pkt));
	struct corrupt_plan *plan;

	if ((void *)(check + 1) > data_end)
		return -1;
	if (end > data_end - data)
		end = data_end - data;
	end = corrupt_end(pkt, end);
	if (start >= end)
		return -1;
	start = corrupt_start(start, end, &n);
	/* UDP over IPv4 may go without a checksum (0): nothing to keep valid. */
	plan = corrupt_plan(pkt->l4, csum_offset(pkt), start, n,
			    pkt->protocol == IPPROTO_UDP && pkt->family == 4 && *check == 0,
			    pkt->protocol == IPPROTO_UDP);
	if (!plan)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	check = pkt_at(data, plan->check);
	if ((void *)(check + 1) > data_end)
		return -1;
	for (__u32 i = 0; i < MAX_CORRUPT && i < plan->n; i++) {
		__u32 off = plan->start + i, word = plan->l4 + ((off - plan->l4) & ~1U);
		__u16 *w = pkt_at(data, word), old, mask;

		if ((void *)(w + 1) > data_end)
			break;
		/* The word as it sits in memory: the byte at `word` is its low half here. */
		mask = (__u16)flip_mask() << ((off - word) * 8);
		old = *w;
		*w = old ^ mask;
		if (!plan->no_csum)
			csum_replace16(check, old, old ^ mask);
	}
	if (!corrupt_keep_csum)
		*check = plan->no_csum ? CSUM_PERTURB : *check ^ CSUM_PERTURB;
	if (plan->udp && *check == 0 && !plan->no_csum)
		*check = 0xffff;	/* a computed 0 is sent as 0xffff (0 means "none") */
	return 0;
}

SEC("netbpf/xdp")
int netbpf_faultxdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct packet pkt = {};
	int is_ip, err = 0;

	netbpf_inc(counters, FAULT_SEEN);
	if (!netbpf_filter(data, data_end))
		return XDP_PASS;
	is_ip = parse(data, data_end, data_end - data, &pkt) == 0;
	if (!matched(data, data_end, &pkt, is_ip))
		return XDP_PASS;
	if (!selected(data, data_end, &pkt))
		return XDP_PASS;
	switch (fault_action) {
	case FAULT_ACT_DROP:
		netbpf_inc(counters, FAULT_HIT);
		return XDP_DROP;
	case FAULT_ACT_TTL:
		err = xdp_ttl(data, data_end, &pkt);
		break;
	case FAULT_ACT_TCP_FLAGS:
	case FAULT_ACT_RST:
		err = xdp_tcp_flags(data, data_end, &pkt);
		break;
	case FAULT_ACT_CORRUPT:
		err = xdp_corrupt(ctx, data, data_end, &pkt);
		break;
	default:
		err = -1;	/* duplicate needs an skb: user space never loads it here */
	}
	netbpf_inc(counters, err ? FAULT_ERRORS : FAULT_HIT);
	return XDP_PASS;
}

/* -- tc: an skb, through the kernel's checksum helpers ---------------------------- */

static __always_inline int tc_ttl(struct __sk_buff *skb, const struct packet *pkt)
{
	__u8 ttl = new_ttl(pkt->ttl);

	if (pkt->family == 4) {
		__u8 old[2] = {pkt->ttl, pkt->protocol}, new[2] = {ttl, pkt->protocol};

		if (bpf_l3_csum_replace(skb, pkt->l3 + offsetof(struct iphdr, check),
					*(__u16 *)old, *(__u16 *)new, 2))
			return -1;
		return bpf_skb_store_bytes(skb, pkt->l3 + offsetof(struct iphdr, ttl), &ttl, 1, 0);
	}
	return bpf_skb_store_bytes(skb, pkt->l3 + offsetof(struct ipv6hdr, hop_limit), &ttl, 1, 0);
}

static __always_inline int tc_tcp_flags(struct __sk_buff *skb, const struct packet *pkt)
{
	__u8 word[2];
	__u16 old;

	if (bpf_skb_load_bytes(skb, pkt->l4 + 12, word, 2))
		return -1;
	old = *(__u16 *)word;
	word[1] = tcp_flags_after(word[1]);
	if (bpf_l4_csum_replace(skb, pkt->l4 + 16, old, *(__u16 *)word, 2))
		return -1;
	return bpf_skb_store_bytes(skb, pkt->l4 + 13, &word[1], 1, 0);
}

static __always_inline int tc_corrupt(struct __sk_buff *skb, const struct packet *pkt, __u32 start)
{
	__u32 end = corrupt_end(pkt, pkt->end), n = corrupt_len;
	struct corrupt_plan *plan;
	__u64 csum_flags = 2;

	if (start >= end)
		return -1;
	start = corrupt_start(start, end, &n);
	plan = corrupt_plan(pkt->l4, csum_offset(pkt), start, n, 0, pkt->protocol == IPPROTO_UDP);
	if (!plan)
		return -1;
	if (plan->udp)
		/* A UDP checksum of 0 means "none": MANGLED_0 leaves such a field alone
		 * and sends a computed 0 as 0xffff. */
		csum_flags |= BPF_F_MARK_MANGLED_0;
	for (__u32 i = 0; i < MAX_CORRUPT && i < plan->n; i++) {
		__u32 off = plan->start + i, word = plan->l4 + ((off - plan->l4) & ~1U);
		__u16 old, new;

		if (bpf_skb_load_bytes(skb, word, &old, 2))
			return -1;
		new = old ^ ((__u16)flip_mask() << ((off - word) * 8));
		if (bpf_skb_store_bytes(skb, word, &new, 2, 0))
			return -1;
		/* Not a pseudo-header field: with CHECKSUM_PARTIAL the helper leaves
		 * the field alone (the final sum is computed over the new bytes). */
		if (bpf_l4_csum_replace(skb, plan->check, old, new, csum_flags))
			return -1;
	}
	if (!corrupt_keep_csum) {
		/* Move the field by a constant, as if the pseudo-header had changed:
		 * in every skb state (PARTIAL, COMPLETE, NONE) the final checksum
		 * ends up wrong by that amount. ENFORCE: a UDP datagram sent without
		 * a checksum gets a wrong one too. */
		if (bpf_l4_csum_replace(skb, plan->check, 0, CSUM_PERTURB, BPF_F_PSEUDO_HDR | 2 |
					(plan->udp ? BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE : 0)))
			return -1;
		/* A NIC may have vouched for the original (CHECKSUM_UNNECESSARY): make
		 * the stack check again. */
		bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
	}
	return 0;
}

static __always_inline int tc_duplicate(struct __sk_buff *skb)
{
	__u32 saved = skb->tc_index;
	long err;

	/* The clone comes through this hook again (at once on egress, from the
	 * backlog on ingress): the mark lets it pass. */
	skb->tc_index = DUP_MARK;
	err = bpf_clone_redirect(skb, skb->ifindex, tc_ingress ? BPF_F_INGRESS : 0);
	skb->tc_index = saved;
	return err ? -1 : 0;
}

SEC("netbpf/tc")
int netbpf_fault_tc(struct __sk_buff *skb)
{
	struct packet pkt = {};
	void *data, *data_end;
	__u32 want, payload = 0;
	int is_ip, err = 0;

	if (fault_action == FAULT_ACT_DUPLICATE && skb->tc_index == DUP_MARK) {
		skb->tc_index = 0;
		return TC_ACT_UNSPEC;
	}
	netbpf_inc(counters, FAULT_SEEN);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	is_ip = parse(data, data_end, skb->len, &pkt) == 0;
	/* Only the linear part of an skb is visible, and pulling more costs a
	 * copy (and, for the clones TCP sends, a new head) on every GSO packet:
	 * pull only what the headers and the expression need, when they are
	 * not linear already. */
	want = is_ip ? 0 : TC_PULL_LEN;
	if (filter_abs_end > want)
		want = filter_abs_end;
	if (filter_ind_end) {
		__u32 x = filter_x_ipv4 && is_ip && pkt.family == 4 ? pkt.ip_hlen : filter_x_max;

		if (filter_ind_end + x > want)
			want = filter_ind_end + x;
	}
	if (filter_whole || want > skb->len)
		want = skb->len;
	if (want > (__u32)(data_end - data)) {
		bpf_skb_pull_data(skb, want);	/* on failure the expression sees less */
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&pkt, 0, sizeof(pkt));
		is_ip = parse(data, data_end, skb->len, &pkt) == 0;
	}
	if (!netbpf_filter(data, data_end))
		return TC_ACT_UNSPEC;
	if (!matched(data, data_end, &pkt, is_ip))
		return TC_ACT_UNSPEC;
	if (fault_action == FAULT_ACT_CORRUPT)
		payload = payload_offset(data, data_end, &pkt);
	if (!selected(data, data_end, &pkt))
		return TC_ACT_UNSPEC;
	switch (fault_action) {
	case FAULT_ACT_DROP:
		netbpf_inc(counters, FAULT_HIT);
		return TC_ACT_SHOT;
	case FAULT_ACT_TTL:
		err = tc_ttl(skb, &pkt);
		break;
	case FAULT_ACT_TCP_FLAGS:
	case FAULT_ACT_RST:
		err = tc_tcp_flags(skb, &pkt);
		break;
	case FAULT_ACT_CORRUPT:
		err = tc_corrupt(skb, &pkt, payload);
		break;
	case FAULT_ACT_DUPLICATE:
		err = tc_duplicate(skb);
		break;
	}
	netbpf_inc(counters, err ? FAULT_ERRORS : FAULT_HIT);
	return TC_ACT_UNSPEC;
}

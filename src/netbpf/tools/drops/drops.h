/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between drops.bpf.c and netbpf/tools/drops/kernel.py. */
#ifndef NETBPF_DROPS_H
#define NETBPF_DROPS_H

#define DROP_MAX_STACK 32	/* frames kept per drop with --stack */
#define DROP_MAX_REASON 512	/* reasons the --reason bitmap can name */

/* One dropped packet, as the ring buffer carries it. With --stack,
 * `stack_bytes` bytes of kernel return addresses (u64 each) follow. */
struct drop_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() */
	__u64 location;		/* the kernel address that freed the skb */
	__u32 reason;		/* enum skb_drop_reason of the running kernel */
	__u32 netns;		/* inode of the network namespace; 0: unknown */
	__u32 ifindex;		/* skb->dev, in that namespace; 0: none */
	__u32 len;		/* skb->len: bytes from where the kernel was reading */
	__u16 eth_proto;	/* skb->protocol, host order */
	__u8 family;		/* 4, 6 or 0 when no IP header was found */
	__u8 l4_proto;		/* IPPROTO_* */
	__u16 sport;		/* host order; ICMP: type */
	__u16 dport;		/* host order; ICMP: code */
	__u8 tcp_flags;		/* FIN SYN RST PSH ACK URG ECE CWR, as on the wire */
	__u8 hook;		/* DROP_HOOK_*: which program saw it */
	__u16 stack_bytes;	/* bytes of stack after this header */
	__u32 ip_len;		/* the IP packet's length from its header; 0: none */
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u64 sk_cookie;	/* the packet's socket (see sk_side); 0: none, or never given a cookie */
	__u32 sk_side;		/* DROP_SK_*: which socket sk_cookie is */
	__u32 _pad;
};

enum drop_sk_side {
	DROP_SK_NONE = 0,
	DROP_SK_RX,		/* the receiving socket (the tracepoint's rx_sk) */
	DROP_SK_SKB,		/* skb->sk: the socket that sent it, or holds it */
};

/* Key of the in-kernel summary (--summary, --metrics): where and why.
 * stack_id is -1 unless --stack. A small key hashes faster: a drop storm
 * pays for one hash lookup per packet, nothing else. */
struct drop_where {
	__u64 location;
	__u32 reason;
	__u32 netns;
	__u32 ifindex;
	__s32 stack_id;
};

/* Key of the summary by flow (--by-flow): where, why and what. */
struct drop_key {
	struct drop_where where;
	__u8 family;
	__u8 l4_proto;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct drop_count {
	__u64 packets;
	__u64 bytes;
};

/* A slot of the per-CPU summary cache: a key that owns it, and its counts.
 * A slot, once taken, keeps its key: counts never move between places. */
#define DROP_SLOTS 256
struct drop_slot {
	struct drop_key key;
	struct drop_count count;
};

enum drop_hook {
	DROP_HOOK_TP_BTF = 1,
	DROP_HOOK_TRACEPOINT = 2,
};

/* Per-CPU counters (the `stats` array). */
enum drop_stat {
	DROP_STAT_SEEN = 0,	/* kfree_skb calls that were drops and passed the filters */
	DROP_STAT_FILTERED,	/* drops the filters left out */
	DROP_STAT_SUMMARY_FULL,	/* drops not aggregated: the summary table was full */
	DROP_STAT_STACK_LOST,	/* stacks not recorded (collision or error) */
	DROP_STATS,
};

#endif

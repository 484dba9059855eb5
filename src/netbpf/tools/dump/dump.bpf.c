// SPDX-License-Identifier: GPL-2.0
/* netbpf dump: capture at XDP or tc, with a tcpdump filter run in the kernel.
 *
 * Each packet the filter keeps becomes a finished pcap record (or pcapng
 * Enhanced Packet Block) written here, in the kernel, into per-CPU blocks of
 * a memory-mappable array that Python also maps (see dump.h). Python copies
 * whole blocks to the output file, so a capture to a file costs Python
 * nothing per packet. The XDP program then tail-calls the program that was
 * on the interface before (slot 0 of `xdp_original`), or passes the packet.
 */
#include <netbpf/common.h>
#include <netbpf/filter.h>
#include <netbpf/attrib.h>
#include "dump.h"

_Static_assert(DUMP_ATTRIB_OPTIONS == 4 + sizeof(struct attrib_record) + 4, "owner option size");

NETBPF_BTF_EXPORT(dump_ring);
NETBPF_BTF_EXPORT(dump_block);
NETBPF_COUNTERS(counters, DUMP_COUNTERS);
/* matched packets, by enum attrib_status; then ATTRIB_LABEL_MISSES */
NETBPF_COUNTERS(attrib_counters, ATTRIB_STATUSES + 1);

/* One per possible CPU (max_entries set before load). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dump_ring);
} rings SEC(".maps");

/* CPUs x blocks per CPU; each value is one block (value_size set before
 * load). No BTF value type: the size is chosen at run time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 4096);
} blocks SEC(".maps");

/* Wake-ups only (a block was filled, or Python asked for the next record):
 * the records carry nothing, so one that does not fit is no loss. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} wakeups SEC(".maps");

/* The program that was on the interface: tail-called after capture. Pinned
 * by netbpf, so that it keeps running if netbpf is killed. */
NETBPF_XDP_ORIGINAL();

/* Set before load. The verifier reads them as constants, which is what lets
 * it prove that every write below stays inside a block. */
const volatile __u32 snap = 262144;	/* bytes kept of a packet at most */
const volatile __u32 fill_limit = 0;	/* a block takes records while its len <= fill_limit */
const volatile __u32 block_mask = 0;	/* blocks per CPU - 1 (a power of two) */
const volatile __u32 format = DUMP_PCAP;
const volatile __u32 nano = 0;		/* nanosecond time stamps */
const volatile __u32 egress = 0;		/* tc: the program is at egress */
const volatile __u32 pull_len = 0;	/* tc: bytes the filter may read, made linear first */
/* Attribution (netbpf/attrib.h): find each packet's socket and its process;
 * keep only the packets of the process or cgroup asked for. */
const volatile __u32 attrib = 0;		/* look the owner up (pcapng records carry it) */
const volatile __u32 attrib_text = 0;		/* ... as opt_comment text (files), else binary (lines, JSON) */
const volatile __u32 want_pid = 0;		/* --pid: the creating process (tgid) */
const volatile __u32 want_comm = 0;		/* --comm: match want_comm_name */
const volatile char want_comm_name[ATTRIB_COMM_LEN] = {};
const volatile __u32 want_selected = 0;		/* --cgroup/--container: the owner's `selected` */

static __always_inline void wake(__u32 cpu)
{
	__u64 value = cpu;

	bpf_ringbuf_output(&wakeups, &value, sizeof(value), BPF_RB_FORCE_WAKEUP);
}

/* Where the next record of `cpu` goes, or NULL (counted as lost). Switches to
 * the next block when this one is full, if Python has released it. */
static __always_inline struct dump_block *block_for_record(struct dump_ring *ring, __u32 cpu,
							  __u32 *offset, int *woken)
{
	__u64 seq = ring->produced;
	__u32 index = cpu * (block_mask + 1) + (seq & block_mask);
	struct dump_block *block = bpf_map_lookup_elem(&blocks, &index);
	__u32 off;

	if (!block)
		return NULL;
	off = block->len;
	if (off > fill_limit) {
		seq += 1;
		if (seq - ring->consumed > block_mask)
			return NULL;	/* Python still holds every other block */
		index = cpu * (block_mask + 1) + (seq & block_mask);
		block = bpf_map_lookup_elem(&blocks, &index);
		if (!block)
			return NULL;
		block->len = 0;
		block->count = 0;
		block->seq = seq;
		/* Publish the new block after resetting it (a full barrier). */
		__sync_fetch_and_add(&ring->produced, 1);
		*woken = 1;
		off = 0;
	}
	*offset = off;
	return block;
}

/* Write one record: `len` is the packet's length on the wire, `cap` how much
 * of it to keep; `tag` (tc only) is a VLAN tag the driver took out of the
 * frame, put back where tcpdump shows it. */
static __always_inline void record(void *ctx, int xdp, __u32 len, __u32 cap, __u32 tag,
				   struct attrib_record *owner)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct dump_ring *ring = bpf_map_lookup_elem(&rings, &cpu);
	struct dump_block *block;
	__u32 off = 0, header, padded = 0, options = 0;
	int woken = 0;
	__u64 now;
	void *rec, *dst;
	long err;

	if (tag)
		len += 4;
	if (cap > len)
		cap = len;
	if (cap > snap)
		cap = snap;
	if (!ring || !cap)
		goto lost;
	block = block_for_record(ring, cpu, &off, &woken);
	if (!block)
		goto lost;
	if (off > fill_limit)	/* already known; said again for the verifier */
		goto lost;
	rec = (void *)(block + 1) + off;
	now = bpf_ktime_get_ns() + ring->clock_offset;
	if (format == DUMP_PCAPNG) {
		__u64 units = nano ? now : now / 1000;

		padded = (cap + 3) & ~3U;
		if (padded > snap + 3)
			goto lost;
		header = DUMP_EPB_HEADER;
		if (attrib && !attrib_text)
			options = DUMP_ATTRIB_OPTIONS;
		((__u32 *)rec)[0] = 6;	/* Enhanced Packet Block */
		((__u32 *)rec)[1] = DUMP_EPB_HEADER + padded + options + DUMP_EPB_TRAILER;
		((__u32 *)rec)[2] = 0;	/* interface 0: the one in the IDB */
		((__u32 *)rec)[3] = units >> 32;
		((__u32 *)rec)[4] = (__u32)units;
		((__u32 *)rec)[5] = cap;
		((__u32 *)rec)[6] = len;
	} else {
		__u64 sec = now / 1000000000;
		__u64 frac = now - sec * 1000000000;

		header = DUMP_PCAP_HEADER;
		((__u32 *)rec)[0] = sec;
		((__u32 *)rec)[1] = nano ? frac : frac / 1000;
		((__u32 *)rec)[2] = cap;
		((__u32 *)rec)[3] = len;
	}
	dst = rec + header;
	if (xdp) {
		err = bpf_xdp_load_bytes(ctx, 0, dst, cap);
	} else if (tag && cap >= 16) {
		err = bpf_skb_load_bytes(ctx, 0, dst, 12);
		*(__u32 *)(dst + 12) = tag;
		if (!err && cap > 16)
			err = bpf_skb_load_bytes(ctx, 12, dst + 16, cap - 16);
	} else {
		err = bpf_skb_load_bytes(ctx, 0, dst, cap);
	}
	if (err)
		goto lost;
	if (format == DUMP_PCAPNG) {
		*(__u32 *)(dst + cap) = 0;	/* the padding: zeroes */
		if (attrib && attrib_text && owner) {
			/* The comment, written here: no per-packet work in Python. */
			options = attrib_comment(dst + padded, owner, &attrib_counters);
			if (options > ATTRIB_COMMENT_MAX + 8)
				goto lost;
			((__u32 *)rec)[1] = DUMP_EPB_HEADER + padded + options + DUMP_EPB_TRAILER;
		} else if (attrib && owner) {
			/* One local-use option with the owner, then opt_endofopt. */
			*(__u32 *)(dst + padded) = ATTRIB_OPTION_CODE | sizeof(*owner) << 16;
			__builtin_memcpy(dst + padded + 4, owner, sizeof(*owner));
			*(__u32 *)(dst + padded + 4 + sizeof(*owner)) = 0;
		}
		*(__u32 *)(dst + padded + options) = DUMP_EPB_HEADER + padded + options + DUMP_EPB_TRAILER;
		header += padded - cap + options + DUMP_EPB_TRAILER;
	}
	block->count += 1;
	/* Committing the length is the last step (and a full barrier): Python
	 * reads up to it and never sees half a record. */
	__sync_fetch_and_add(&block->len, header + cap);
	if (woken || ring->waiting) {
		ring->waiting = 0;
		wake(cpu);
	}
	return;
lost:
	netbpf_inc(counters, DUMP_LOST);
	if (woken)
		wake(cpu);
}

/* Whether the owner is the one asked for; fills `owner` (the attribution
 * counters say how many packets had which answer). */
static __always_inline int wanted(__u64 cookie, __u32 status, struct attrib_record *owner)
{
	struct attrib_cache *sock = attrib_owner(cookie, status, owner);

	netbpf_inc(attrib_counters, owner->status);
	if (!want_pid && !want_comm && !want_selected)
		return 1;
	if (!sock)
		return 0;
	if (want_pid && sock->rec.pid != want_pid)
		return 0;
	if (want_selected && !sock->selected)
		return 0;
	if (want_comm) {
		for (int i = 0; i < ATTRIB_COMM_LEN; i++) {
			if (owner->comm[i] != want_comm_name[i])
				return 0;
			if (!owner->comm[i])
				break;
		}
	}
	return 1;
}

SEC("netbpf/xdp")
int netbpf_dump_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 keep;

	netbpf_inc(counters, DUMP_SEEN);
	keep = netbpf_filter(data, data_end);
	if (keep && attrib) {
		struct attrib_record owner = {};
		__u32 status;
		__u64 cookie = attrib_lookup(ctx, data, data_end, &status);

		if (wanted(cookie, status, &owner)) {
			netbpf_inc(counters, DUMP_MATCHED);
			record(ctx, 1, bpf_xdp_get_buff_len(ctx), keep, 0, &owner);
		}
	} else if (keep) {
		netbpf_inc(counters, DUMP_MATCHED);
		record(ctx, 1, bpf_xdp_get_buff_len(ctx), keep, 0, 0);
	}
	bpf_tail_call(ctx, &xdp_original, 0);
	return XDP_PASS;
}

SEC("netbpf/tc")
int netbpf_dump_tc(struct __sk_buff *skb)
{
	void *data, *data_end;
	__u32 keep, tag = 0, want;
	struct attrib_record *arec = 0;

	netbpf_inc(counters, DUMP_SEEN);
	/* Direct packet access sees only the linear part of an skb: make the
	 * bytes the filter may read linear (only when there is a filter). */
	if (pull_len) {
		want = skb->len < pull_len ? skb->len : pull_len;
		if ((long)skb->data_end - (long)skb->data < want)
			bpf_skb_pull_data(skb, want);
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	keep = netbpf_filter(data, data_end);
	if (keep && attrib) {
		struct attrib_record owner = {};
		__u32 status;
		__u64 cookie;

		if (egress) {
			/* Locally sent packets carry their socket. (Received ones may
			 * carry the sender's, from another namespace: looked up instead.) */
			struct bpf_sock *sk = skb->sk;

			status = ATTRIB_NO_SOCKET;
			cookie = 0;
			if (sk)	/* a SYN-ACK's is a request socket: its listener's */
				cookie = attrib_tcp_cookie(sk, &status);
		} else {
			if (!pull_len && (long)skb->data_end - (long)skb->data < ATTRIB_PULL)
				bpf_skb_pull_data(skb, skb->len < ATTRIB_PULL ? skb->len : ATTRIB_PULL);
			cookie = attrib_lookup(skb, (void *)(long)skb->data, (void *)(long)skb->data_end,
					       &status);
		}
		if (!wanted(cookie, status, &owner))
			keep = 0;
		else
			arec = &owner;
		if (keep) {
			netbpf_inc(counters, DUMP_MATCHED);
			if (skb->vlan_present)
				tag = bpf_htonl((__u32)bpf_ntohs(skb->vlan_proto) << 16 | skb->vlan_tci);
			record(skb, 0, skb->len, keep, tag, arec);
		}
	} else if (keep) {
		netbpf_inc(counters, DUMP_MATCHED);
		if (skb->vlan_present)
			tag = bpf_htonl((__u32)bpf_ntohs(skb->vlan_proto) << 16 | skb->vlan_tci);
		record(skb, 0, skb->len, keep, tag, 0);
	}
	return -1;	/* TC_ACT_UNSPEC (tcx: next): capture never decides */
}

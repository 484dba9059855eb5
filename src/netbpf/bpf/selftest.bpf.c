// SPDX-License-Identifier: GPL-2.0
/* The loader's self-test: one small program per attach kind netbpf uses,
 * each counting what it sees, plus the producers of the ring buffer and
 * perf buffer benchmarks. Kernel tests attach each one to real traffic.
 */
#include <netbpf/common.h>
#include <bpf/bpf_tracing.h>
#include <netbpf/filter.h>
#include "selftest.h"

struct sk_buff;

NETBPF_BTF_EXPORT(selftest_record);
NETBPF_BTF_EXPORT(selftest_sample);
NETBPF_COUNTERS(counters, ST_COUNTERS);
NETBPF_RINGBUF(records, 1 << 22);

NETBPF_PERF_EVENTS(samples);

NETBPF_XDP_ORIGINAL();

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

const volatile __u32 xdp_verdict = XDP_PASS;
const volatile __u32 match_reason = 0;

SEC("xdp")
int netbpf_st_xdp(struct xdp_md *ctx)
{
	netbpf_inc(counters, ST_XDP);
	return xdp_verdict;
}

/* Tail-calls slot 0 of xdp_original (the program it stands in front of);
 * an empty slot falls through to PASS. */
SEC("xdp")
int netbpf_st_tail(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &xdp_original, 0);
	return XDP_PASS;
}

SEC("xdp")
int netbpf_st_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("tc")
int netbpf_st_tc(struct __sk_buff *skb)
{
	netbpf_inc(counters, ST_TC);
	return -1; /* TC_ACT_UNSPEC / TCX_NEXT: let the next program decide */
}

SEC("socket")
int netbpf_st_sock(struct __sk_buff *skb)
{
	netbpf_inc(counters, ST_SOCKET);
	return skb->len;
}

SEC("sockops")
int netbpf_st_ops(struct bpf_sock_ops *skops)
{
	__u64 key;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		netbpf_inc(counters, ST_SOCKOPS_ESTABLISHED);
		key = ((__u64)skops->local_port << 32) | bpf_ntohl(skops->remote_port);
		bpf_sock_hash_update(skops, &sockets, &key, BPF_ANY);
		break;
	}
	return 1;
}

SEC("sk_msg")
int netbpf_st_msg(struct sk_msg_md *msg)
{
	netbpf_inc(counters, ST_SK_MSG);
	netbpf_add(&counters, ST_SK_MSG_BYTES, msg->size);
	return SK_PASS;
}

SEC("tracepoint/skb/kfree_skb")
int netbpf_st_tp(void *ctx)
{
	netbpf_inc(counters, ST_TRACEPOINT);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(netbpf_st_tpbtf, struct sk_buff *skb, void *location, unsigned int reason)
{
	netbpf_inc(counters, ST_TP_BTF);
	if (reason == match_reason)
		netbpf_inc(counters, ST_TP_BTF_MATCHED);
	return 0;
}

/* Benchmark producer: each run emits `count` 64-byte records, where `count`
 * is the first u32 of the test-run packet. */
struct emit_ctx {
	__u64 base;
};

static long emit_one(__u32 index, struct emit_ctx *ectx)
{
	struct selftest_record *rec = netbpf_reserve(records, sizeof(*rec));

	if (!rec)
		return 0;
	rec->seq = ectx->base + index;
	rec->cpu = bpf_get_smp_processor_id();
	__builtin_memset(rec->payload, 0, sizeof(rec->payload));
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

SEC("xdp")
int netbpf_st_ring(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct emit_ctx ectx = {};
	__u32 count;

	if (data + 16 > data_end)
		return XDP_ABORTED;
	count = *(__u32 *)data;
	ectx.base = *(__u64 *)(data + 8);
	bpf_loop(count, emit_one, &ectx, 0);
	return XDP_PASS;
}

/* Perf buffer producer: a header, then the packet itself from the context. */
SEC("xdp")
int netbpf_st_perf(struct xdp_md *ctx)
{
	struct selftest_sample hdr;
	__u64 len = ctx->data_end - ctx->data;

	hdr.len = len;
	hdr.cap_len = len;
	netbpf_perf_output(ctx, samples, BPF_F_CURRENT_CPU | (len << 32), &hdr, sizeof(hdr));
	return XDP_PASS;
}

/* What netbpf_filter() returned for the last packet: the harness that tests
 * compiled tcpdump expressions against libpcap's own interpreter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} filter_result SEC(".maps");

SEC("netbpf/xdp")
int netbpf_st_filt(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0, keep = netbpf_filter(data, data_end);

	bpf_map_update_elem(&filter_result, &key, &keep, BPF_ANY);
	return XDP_PASS;
}

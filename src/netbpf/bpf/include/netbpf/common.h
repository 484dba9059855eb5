/* SPDX-License-Identifier: GPL-2.0 */
/* What every netbpf BPF program shares: helpers, a ring buffer whose
 * overflows are counted, per-CPU counters, and the license.
 */
#ifndef NETBPF_COMMON_H
#define NETBPF_COMMON_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Keep `struct name` in the object's BTF even where only its size or a local
 * pointer is used, so that the Python mirror can be checked against it. */
#define NETBPF_BTF_EXPORT(name) const struct name *__netbpf_btf_##name __attribute__((unused))

/* Per-CPU u64 counters indexed by a tool's enum (no atomics needed). */
#define NETBPF_COUNTERS(name, n)						\
	struct {								\
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);			\
		__uint(max_entries, n);						\
		__type(key, __u32);						\
		__type(value, __u64);						\
	} name SEC(".maps")

/* Copy the four words of an IPv6 address out of a socket's context
 * (bpf_sock_ops, sk_msg_md): the verifier allows only 4-byte loads of
 * those fields, so no memcpy. */
#define netbpf_ip6_copy(dst, src)						\
	do {									\
		(dst)[0] = (src)[0];						\
		(dst)[1] = (src)[1];						\
		(dst)[2] = (src)[2];						\
		(dst)[3] = (src)[3];						\
	} while (0)

/* A BPF ring buffer `name` and its per-CPU overflow counter `name_lost`.
 * A failed reservation is never silent: the Python reader adds the counter up.
 * The size can be changed before load (BpfObject.set_map_size).
 */
#define NETBPF_RINGBUF(name, bytes)						\
	struct {								\
		__uint(type, BPF_MAP_TYPE_RINGBUF);				\
		__uint(max_entries, bytes);					\
	} name SEC(".maps");							\
	NETBPF_COUNTERS(name##_lost, 1)

static __always_inline void netbpf_add(void *counters, __u32 index, __u64 delta)
{
	__u64 *value = bpf_map_lookup_elem(counters, &index);

	if (value)
		*value += delta;
}

#define netbpf_inc(counters, index) netbpf_add(&(counters), (index), 1)

/* Reserve a record in `ring`, counting the failure in `ring_lost`. */
#define netbpf_reserve(ring, size)						\
	({									\
		void *__rec = bpf_ringbuf_reserve(&(ring), (size), 0);		\
		if (!__rec)							\
			netbpf_inc(ring##_lost, 0);				\
		__rec;								\
	})

/* Copy a record into `ring`, counting the failure in `ring_lost`. */
#define netbpf_output(ring, data, size)						\
	({									\
		long __err = bpf_ringbuf_output(&(ring), (data), (size), 0);	\
		if (__err)							\
			netbpf_inc(ring##_lost, 0);				\
		__err;								\
	})

/* The program that was on the XDP hook before a netbpf program took it
 * (slot 0, tail-called: bpf_tail_call(ctx, &xdp_original, 0)). netbpf dump's
 * capture program and xdp chain's dispatcher stand in front of it; user
 * space finds it by this name (netbpf.bpf.attach.xdp_front, which also pins
 * it, so that it keeps running if netbpf is killed).
 */
#define NETBPF_XDP_ORIGINAL()							\
	struct {								\
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);				\
		__uint(max_entries, 1);						\
		__uint(key_size, sizeof(__u32));				\
		__uint(value_size, sizeof(__u32));				\
	} xdp_original SEC(".maps")

/* A perf event array `name` (one ring per CPU) and its per-CPU overflow
 * counter `name_lost`. The kernel also reports overflows, but only lazily
 * (a PERF_RECORD_LOST appears once there is room again); counting failed
 * outputs here makes the count exact at any moment.
 */
#define NETBPF_PERF_EVENTS(name)						\
	struct {								\
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);			\
		__uint(key_size, sizeof(__u32));				\
		__uint(value_size, sizeof(__u32));				\
	} name SEC(".maps");							\
	NETBPF_COUNTERS(name##_lost, 1)

/* bpf_perf_event_output() into `events`, counting failures in `events_lost`.
 * `flags` may carry BPF_F_CTXLEN_MASK bytes of packet from the context. */
#define netbpf_perf_output(ctx, events, flags, data, size)			\
	({									\
		long __err = bpf_perf_event_output((ctx), &(events), (flags),	\
						   (data), (size));		\
		if (__err)							\
			netbpf_inc(events##_lost, 0);				\
		__err;								\
	})

#ifndef NETBPF_NO_LICENSE
char LICENSE[] SEC("license") = "GPL";
#endif

#endif /* NETBPF_COMMON_H */

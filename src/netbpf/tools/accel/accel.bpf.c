// SPDX-License-Identifier: GPL-2.0
/* netbpf accel: local TCP connections skip the TCP/IP stack.
 *
 * netbpf_acc_ops (sock_ops, on a cgroup v2) stores each newly established
 * local socket in accel_sockhash, keyed by its own 4-tuple. netbpf_acc_msg
 * (the sk_msg verdict program of that map) runs on every sendmsg of a stored
 * socket and moves the data into the receive queue of the peer socket
 * (bpf_msg_redirect_hash with BPF_F_INGRESS): no skb, no loopback device.
 *
 * Three kernel behaviours shape it:
 * - bpf_msg_redirect_hash() returns SK_DROP when the peer is not in the map,
 *   and an sk_msg verdict of SK_DROP fails the application's send with
 *   EACCES. A miss must be SK_PASS: plain TCP.
 * - A receiver reads redirected data (its psock queue) before data that came
 *   through TCP. Switching a socket from redirect to TCP keeps the byte order;
 *   switching from TCP to redirect could overtake bytes still on their way.
 *   So once a socket sends through TCP it never redirects again (tcp_only).
 * - Every redirected message costs the receiver a socket lock and a wake-up
 *   that TCP, coalescing small segments, does not pay: streams of small
 *   writes were about half as fast. A socket that sends demote_after small
 *   messages in a row, none coming back between, sends through TCP from then.
 * - A redirect has no flow control: the receiver is charged for the data but
 *   the sender never waits, so a reader that stops reading lets its peer
 *   queue as much as TCP's global memory allows (256 MiB in a trial, where
 *   TCP stopped the sender at 3 MiB), and past tcp_mem the sends fail with
 *   ENOMEM. The kernel counts the bytes queued on a socket in its psock
 *   (msg_tot_len); when the peer already holds queue_limit bytes, the sender
 *   moves to TCP, whose flow control then makes it wait.
 * Going back from TCP to redirect is never done: besides the byte order, a
 *   reader blocked in tcp_recvmsg() (MSG_WAITALL) waits on the TCP queue
 *   only and would not see redirected data.
 */
#include <netbpf/common.h>
#include <bpf/bpf_core_read.h>
#include "accel.h"

#define AF_INET 2
#define AF_INET6 10
#define TCP_CLOSE 7
/* sk_user_data carries flags in its low bits (SK_USER_DATA_NOCOPY, _BPF, _PSOCK). */
#define SK_USER_DATA_PTRMASK (~7ULL)

/* Kernel-internal layouts, relocated by CO-RE against the running kernel. */
struct sock___accel {
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct sk_psock___accel {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct accel_key);
	__type(value, __u64);
} accel_sockhash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct accel_key);
	__type(value, struct accel_sock_state);
} accel_state SEC(".maps");

/* With --ports: accelerate only connections from or to these ports. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} accel_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct accel_control);
} accel_control SEC(".maps");

NETBPF_COUNTERS(accel_counters, ACCEL_COUNTERS);

const volatile __u32 filter_ports = 0;
const volatile __u32 small_bytes = 16384;	/* a message below this is small */
const volatile __u32 demote_after = 64;		/* 0: never move a socket back to TCP */
const volatile __u64 queue_limit = 0;		/* unread redirected bytes a peer may hold; 0: no limit */

NETBPF_BTF_EXPORT(accel_key);
NETBPF_BTF_EXPORT(accel_sock_state);
NETBPF_BTF_EXPORT(accel_control);

static __always_inline void v4_mapped(__u32 ip6[4], __u32 ip4)
{
	ip6[0] = 0;
	ip6[1] = 0;
	ip6[2] = bpf_htonl(0xffff);
	ip6[3] = ip4;
}

static __always_inline int is_loopback(const __u32 ip[4])
{
	if (ip[0] == 0 && ip[1] == 0 && ip[2] == bpf_htonl(0xffff))
		return (bpf_ntohl(ip[3]) >> 24) == 127;			/* 127.0.0.0/8 */
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] == bpf_htonl(1);	/* ::1 */
}

static __always_inline int same_ip(const __u32 a[4], const __u32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int port_wanted(__u32 port)
{
	return bpf_map_lookup_elem(&accel_ports, &port) != NULL;
}

/* A socket's own key from its context, a bpf_sock_ops or an sk_msg_md (a
 * macro: the two types name these fields alike); 0 when it is neither IPv4
 * nor IPv6. */
#define ctx_key(ctx, key)							\
	({									\
		int __known = 1;						\
		if ((ctx)->family == AF_INET) {					\
			v4_mapped((key)->local_ip, (ctx)->local_ip4);		\
			v4_mapped((key)->remote_ip, (ctx)->remote_ip4);		\
		} else if ((ctx)->family == AF_INET6) {				\
			netbpf_ip6_copy((key)->local_ip, (ctx)->local_ip6);	\
			netbpf_ip6_copy((key)->remote_ip, (ctx)->remote_ip6);	\
		} else {							\
			__known = 0;						\
		}								\
		if (__known) {							\
			(key)->local_port = (ctx)->local_port;			\
			(key)->remote_port = bpf_ntohl((ctx)->remote_port);	\
			(key)->netns = bpf_get_netns_cookie(ctx);		\
		}								\
		__known;							\
	})

static __always_inline int sock_ops_key(struct bpf_sock_ops *skops, struct accel_key *key)
{
	return ctx_key(skops, key);
}

/* Where the kernel counts the redirected bytes this socket has not read yet
 * (its psock->msg_tot_len); 0 where the kernel does not count them. */
static __always_inline __u64 queue_address(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;
	__u64 psock = 0;

	if (!bpf_core_field_exists(struct sk_psock___accel, msg_tot_len) || !sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	if (bpf_core_read(&psock, sizeof(psock), &((struct sock___accel *)tp)->sk_user_data))
		return 0;
	psock &= SK_USER_DATA_PTRMASK;
	if (!psock)
		return 0;
	return psock + bpf_core_field_offset(struct sk_psock___accel, msg_tot_len);
}

static __always_inline void store(struct bpf_sock_ops *skops)
{
	struct accel_sock_state fresh = {};
	struct accel_key key = {};

	if (!sock_ops_key(skops, &key))
		return;
	/* Local: to a loopback address, or to this very address (a host
	 * talking to its own IP). Any other peer may be another host, whose
	 * socket will never be in this map. */
	if (!is_loopback(key.remote_ip) && !same_ip(key.local_ip, key.remote_ip))
		return;
	if (filter_ports && !port_wanted(key.local_port) && !port_wanted(key.remote_port))
		return;
	/* A reused 4-tuple starts afresh. Without its state the socket would
	 * never redirect, so store it in the sockhash only when this worked. */
	if (bpf_map_update_elem(&accel_state, &key, &fresh, BPF_ANY) != 0) {
		netbpf_inc(accel_counters, ACCEL_SOCKETS_FAILED);
		return;
	}
	if (bpf_sock_hash_update(skops, &accel_sockhash, &key, BPF_ANY) != 0) {
		bpf_map_delete_elem(&accel_state, &key);
		netbpf_inc(accel_counters, ACCEL_SOCKETS_FAILED);
		return;
	}
	/* The kernel drops the socket from the sockhash when it closes; the
	 * state entry goes at the same moment (BPF_SOCK_OPS_STATE_CB). */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	netbpf_inc(accel_counters, ACCEL_SOCKETS_ADDED);
	/* The psock exists now that the socket is in the sockhash. */
	fresh.queued_at = queue_address(skops);
	if (fresh.queued_at)
		bpf_map_update_elem(&accel_state, &key, &fresh, BPF_EXIST);
}

SEC("sockops")
int netbpf_acc_ops(struct bpf_sock_ops *skops)
{
	struct accel_key key = {};

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		store(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == TCP_CLOSE && sock_ops_key(skops, &key))
			bpf_map_delete_elem(&accel_state, &key);
		break;
	}
	return 1;
}

static __always_inline void record_max(__u32 queued)
{
	__u32 index = ACCEL_MAX_UNREAD;
	__u64 *max = bpf_map_lookup_elem(&accel_counters, &index);

	if (max && queued > *max)
		*max = queued;
}

static __always_inline void count_tcp(__u32 size)
{
	netbpf_inc(accel_counters, ACCEL_MSG_TCP);
	netbpf_add(&accel_counters, ACCEL_BYTES_TCP, size);
}

SEC("sk_msg")
int netbpf_acc_msg(struct sk_msg_md *msg)
{
	struct accel_key self = {}, peer = {};
	struct accel_sock_state *state, *peer_state;
	struct accel_control *control;
	__u32 zero = 0, size = msg->size, queued = 0;

	control = bpf_map_lookup_elem(&accel_control, &zero);
	if (control && control->draining)
		goto tcp;

	if (!ctx_key(msg, &self))
		goto tcp;

	state = bpf_map_lookup_elem(&accel_state, &self);
	if (!state || state->tcp_only)
		goto tcp;

	/* The peer's key is this socket's 4-tuple seen from the other end. */
	peer.netns = self.netns;
	__builtin_memcpy(peer.local_ip, self.remote_ip, sizeof(peer.local_ip));
	__builtin_memcpy(peer.remote_ip, self.local_ip, sizeof(peer.remote_ip));
	peer.local_port = self.remote_port;
	peer.remote_port = self.local_port;

	peer_state = bpf_map_lookup_elem(&accel_state, &peer);
	if (peer_state && peer_state->queued_at &&
	    bpf_probe_read_kernel(&queued, sizeof(queued), (void *)peer_state->queued_at) == 0) {
		record_max(queued);
		if (queue_limit && queued + size > queue_limit) {
			/* The peer is not keeping up: let TCP's flow control hold
			 * the sender back. Its queued bytes are still read first. */
			state->tcp_only = ACCEL_TCP_BACKLOG;
			netbpf_inc(accel_counters, ACCEL_SOCKETS_BACKLOG);
			goto tcp;
		}
	}

	if (bpf_msg_redirect_hash(msg, &accel_sockhash, &peer, BPF_F_INGRESS) != SK_PASS) {
		/* The helper said SK_DROP: returning it would fail the send with
		 * EACCES. Pass, and stay on TCP so that later bytes cannot
		 * overtake these ones should the peer appear. */
		state->tcp_only = ACCEL_TCP_NO_PEER;
		netbpf_inc(accel_counters, ACCEL_SOCKETS_NO_PEER);
		goto tcp;
	}
	netbpf_inc(accel_counters, ACCEL_MSG_REDIRECTED);
	netbpf_add(&accel_counters, ACCEL_BYTES_REDIRECTED, size);

	if (size >= small_bytes) {
		state->small_run = 0;
	} else if (demote_after && ++state->small_run >= demote_after) {
		/* This message is redirected, the next ones go through TCP. */
		state->tcp_only = ACCEL_TCP_SMALL_WRITES;
		netbpf_inc(accel_counters, ACCEL_SOCKETS_SMALL);
	}
	/* The peer receives: its own run of small sends is broken (a request
	 * and its answer are not a stream). */
	if (peer_state && peer_state->small_run)
		peer_state->small_run = 0;
	return SK_PASS;
tcp:
	/* Never SK_DROP. */
	count_tcp(size);
	return SK_PASS;
}

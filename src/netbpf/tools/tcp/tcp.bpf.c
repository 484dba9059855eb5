// SPDX-License-Identifier: GPL-2.0
/* netbpf tcp: what TCP is doing, from the kernel's own tracepoints.
 *
 *   tp_btf/tcp_retransmit_skb      a segment sent again (and how many segments)
 *   tp_btf/tcp_retransmit_synack   a SYN-ACK sent again
 *   tp_btf/tcp_send_reset          a RST sent (with or without a socket)
 *   tp_btf/tcp_receive_reset       a RST received by a socket
 *   tp_btf/inet_sock_set_state     every state change; with it, bcc tcplife's
 *                                  per-connection lifetime, bytes and duration
 *
 * Each event is filtered in the kernel (namespace, address, port), streamed
 * to the ring buffer when its kind was asked for, and counted per flow or
 * per remote endpoint in `summary` when --summary is on.
 */
#include <netbpf/common.h>
#include <bpf/bpf_tracing.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <netbpf/kernel.h>
#include <netbpf/scope.h>
#include "tcp.h"

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define TCP_NEW_SYN_RECV 12

NETBPF_BTF_EXPORT(tcp_event);
NETBPF_BTF_EXPORT(tcp_key);
NETBPF_BTF_EXPORT(tcp_counts);
NETBPF_RINGBUF(events, 8 << 20);
NETBPF_COUNTERS(totals, TCP_TOTALS);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcp_key);
	__type(value, struct tcp_counts);
} summary SEC(".maps");

/* When each connection started, and who opened or closed it (tcplife). */
struct birth {
	__u64 ts_ns;
	__u32 pid;
	__u32 _pad;
	char comm[16];
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct birth);
} births SEC(".maps");

const volatile __u32 stream_kinds = 0;	/* bit (1 << kind): stream this kind */
const volatile __u8 summarise = 0;
const volatile __u8 by_remote = 0;	/* summary key: remote endpoint only */

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack socket talking IPv4) as IPv4. */
static __always_inline void unmap_v4(struct tcp_event *e)
{
	const __u32 *l = (const __u32 *)e->laddr, *r = (const __u32 *)e->raddr;

	if (e->family != 6 || l[0] || l[1] || l[2] != bpf_htonl(0xffff) || r[0] || r[1] ||
	    r[2] != bpf_htonl(0xffff))
		return;
	e->family = 4;
	__builtin_memcpy(e->laddr, &l[3], 4);
	__builtin_memset(e->laddr + 4, 0, 12);
	__builtin_memcpy(e->raddr, &r[3], 4);
	__builtin_memset(e->raddr + 4, 0, 12);
}

/* Endpoints of a socket (full, request or time-wait: all begin with sock_common). */
static __always_inline int from_sock(const struct sock *sk, struct tcp_event *e)
{
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == AF_INET) {
		e->family = 4;
		BPF_CORE_READ_INTO((__u32 *)e->laddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->raddr, sk, __sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		e->family = 6;
		BPF_CORE_READ_INTO((struct in6_addr *)e->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->raddr, sk, __sk_common.skc_v6_daddr);
		unmap_v4(e);
	} else {
		return 0;
	}
	e->oldstate = e->newstate = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* The local port: a full socket keeps inet_sport until it is freed (skc_num
	 * is cleared when the port is released, before the state becomes CLOSE);
	 * time-wait and request sockets have no inet_sock, only skc_num. */
	if (e->newstate != TCP_TIME_WAIT && e->newstate != TCP_NEW_SYN_RECV)
		e->lport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	if (!e->lport)
		e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->netns = sock_netns(sk);
	e->skaddr = (__u64)sk;
	return 1;
}

/* Endpoints of a received packet, from our side: its destination is local. */
static __always_inline int from_skb(const struct sk_buff *skb, struct tcp_event *e)
{
	unsigned char *ip = BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header);
	__u8 first, ports[4];
	unsigned char *l4;

	if (bpf_probe_read_kernel(&first, 1, ip))
		return 0;
	if ((first >> 4) == 4) {
		struct iphdr iph;

		if (bpf_probe_read_kernel(&iph, sizeof(iph), ip))
			return 0;
		e->family = 4;
		__builtin_memcpy(e->raddr, &iph.saddr, 4);
		__builtin_memcpy(e->laddr, &iph.daddr, 4);
		l4 = ip + iph.ihl * 4;
	} else if ((first >> 4) == 6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), ip))
			return 0;
		e->family = 6;
		__builtin_memcpy(e->raddr, &ip6.saddr, 16);
		__builtin_memcpy(e->laddr, &ip6.daddr, 16);
		l4 = ip + sizeof(ip6);
	} else {
		return 0;
	}
	if (bpf_probe_read_kernel(ports, 4, l4))
		return 0;
	e->rport = (ports[0] << 8) | ports[1];
	e->lport = (ports[2] << 8) | ports[3];
	e->netns = dev_netns(BPF_CORE_READ(skb, dev));
	return 1;
}

static __always_inline int wanted(const struct tcp_event *e)
{
	if (filter_netns && e->netns != filter_netns)
		return 0;
	if (filter_family && (e->family != filter_family ||
			      !(addr_match(e->laddr) || addr_match(e->raddr))))
		return 0;
	if (filter_port && e->lport != port_value && e->rport != port_value)
		return 0;
	return 1;
}

/* An event whose endpoints were `found` and that the filters want goes on;
 * any other is counted as filtered. */
static __always_inline int kept(int found, const struct tcp_event *e)
{
	if (found && wanted(e))
		return 1;
	netbpf_inc(totals, TCP_T_FILTERED);
	return 0;
}

static __always_inline void count(const struct tcp_event *e, int field, __u64 n)
{
	struct tcp_key key = {};
	struct tcp_counts *c, zero = {};

	if (!summarise)
		return;
	key.netns = e->netns;
	key.family = e->family;
	key.rport = e->rport;
	__builtin_memcpy(key.raddr, e->raddr, 16);
	if (!by_remote) {
		key.lport = e->lport;
		__builtin_memcpy(key.laddr, e->laddr, 16);
	}
	c = bpf_map_lookup_elem(&summary, &key);
	if (!c) {
		bpf_map_update_elem(&summary, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&summary, &key);
		if (!c) {
			netbpf_inc(totals, TCP_T_SUMMARY_FULL);
			return;
		}
	}
	switch (field) {
	case 0: c->retrans_segs += n; break;
	case 1: c->retrans_failed += n; break;
	case 2: c->resets_sent += n; break;
	case 3: c->resets_received += n; break;
	case 4: c->closed += n; break;
	case 5: c->synack_retrans += n; break;
	}
}

static __always_inline void emit(struct tcp_event *e)
{
	if (!(stream_kinds & (1U << e->kind)))
		return;
	e->ts_ns = bpf_ktime_get_ns();
	/* No wake-up per event: the reader polls every 20 ms (stream.py). */
	if (bpf_ringbuf_output(&events, e, sizeof(*e), BPF_RB_NO_WAKEUP))
		netbpf_inc(events_lost, 0);
}

static __always_inline void tcp_stats(const struct sock *sk, struct tcp_event *e)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;

	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* stored << 3 */
}

/* An event that counts one: in the totals, in the summary's `field`, and
 * on the stream. */
static __always_inline void report_one(struct tcp_event *e, __u32 total, int field)
{
	netbpf_inc(totals, total);
	count(e, field, 1);
	emit(e);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(netbpf_tcp_rtx, const struct sock *sk, const struct sk_buff *skb, int err)
{
	struct tcp_event e = {};
	const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)skb->cb;
	__u16 segs;

	if (!kept(from_sock(sk, &e), &e))
		return 0;
	segs = BPF_CORE_READ(cb, tcp_gso_segs);
	e.kind = TCP_EV_RETRANS;
	e.segs = segs ? segs : 1;
	e.err = err;
	tcp_stats(sk, &e);
	/* The kernel counts RetransSegs only for retransmits that went out. */
	if (err) {
		netbpf_inc(totals, TCP_T_RETRANS_FAILED);
		count(&e, 1, 1);
	} else {
		netbpf_add(&totals, TCP_T_RETRANS_SEGS, e.segs);
		count(&e, 0, e.segs);
	}
	emit(&e);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(netbpf_tcp_synr, const struct sock *sk, const struct sock *req)
{
	struct tcp_event e = {};

	/* request_sock begins with sock_common, like sock: the same reads apply. */
	if (!kept(from_sock(req, &e), &e))
		return 0;
	e.kind = TCP_EV_SYNACK_RETRANS;
	e.segs = 1;
	report_one(&e, TCP_T_SYNACK_RETRANS, 5);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(netbpf_tcp_rsts, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	struct tcp_event e = {};
	int ok;

	/* Without a full socket (a packet to a closed port, a time-wait socket
	 * answering), the endpoints are those of the packet the RST answers. */
	if (sk)
		ok = from_sock(sk, &e);
	else
		ok = skb && from_skb(skb, &e);
	if (!kept(ok, &e))
		return 0;
	e.kind = TCP_EV_RESET_SENT;
	e.reason = reason;
	report_one(&e, TCP_T_RESETS_SENT, 2);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(netbpf_tcp_rstr, struct sock *sk)
{
	struct tcp_event e = {};

	if (!kept(from_sock(sk, &e), &e))
		return 0;
	e.kind = TCP_EV_RESET_RECEIVED;
	report_one(&e, TCP_T_RESETS_RECEIVED, 3);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(netbpf_tcp_stat, const struct sock *sk, const int oldstate, const int newstate)
{
	struct tcp_event e = {};
	__u64 key = (__u64)sk;
	struct birth *b;

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (!kept(from_sock(sk, &e), &e))
		return 0;
	e.kind = TCP_EV_STATE;
	e.oldstate = oldstate;
	e.newstate = newstate;
	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	e.cgroup_id = bpf_get_current_cgroup_id();
	netbpf_inc(totals, TCP_T_STATE_CHANGES);
	emit(&e);

	/* tcplife: a connection is born at its first state change (SYN_SENT for
	 * the side that connects, SYN_RECV for the side that accepts) and dies at
	 * CLOSE. Who it belongs to is known in process context only: connect()
	 * (SYN_SENT), close() (FIN_WAIT1, LAST_ACK). */
	if (newstate < TCP_FIN_WAIT1) {
		struct birth fresh = { .ts_ns = bpf_ktime_get_ns() };

		if (newstate == TCP_SYN_SENT) {
			fresh.pid = e.pid;
			fresh.cgroup_id = e.cgroup_id;
			__builtin_memcpy(fresh.comm, e.comm, sizeof(fresh.comm));
		}
		bpf_map_update_elem(&births, &key, &fresh, BPF_NOEXIST);
		return 0;
	}
	b = bpf_map_lookup_elem(&births, &key);
	if (!b)
		return 0; /* born before we started: no lifetime to tell */
	if ((newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) && !b->pid) {
		b->pid = e.pid;
		b->cgroup_id = e.cgroup_id;
		__builtin_memcpy(b->comm, e.comm, sizeof(b->comm));
	}
	if (newstate != TCP_CLOSE)
		return 0;
	e.kind = TCP_EV_CLOSE;
	e.duration_ns = bpf_ktime_get_ns() - b->ts_ns;
	e.pid = b->pid;
	e.cgroup_id = b->cgroup_id;
	__builtin_memcpy(e.comm, b->comm, sizeof(e.comm));
	e.rx_bytes = BPF_CORE_READ((const struct tcp_sock *)sk, bytes_received);
	e.tx_bytes = BPF_CORE_READ((const struct tcp_sock *)sk, bytes_acked);
	tcp_stats(sk, &e);
	bpf_map_delete_elem(&births, &key);
	report_one(&e, TCP_T_CLOSED, 4);
	return 0;
}

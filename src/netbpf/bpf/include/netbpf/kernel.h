/* SPDX-License-Identifier: GPL-2.0 */
/* The few kernel structures netbpf drops and tcp read, declared with
 * preserve_access_index: libbpf relocates every field access against the
 * running kernel's BTF at load (CO-RE), so no vmlinux.h and no kernel headers
 * are needed, and a field that moved between kernels is still found.
 * Only the fields read are declared; their order here means nothing.
 */
#ifndef NETBPF_KERNEL_H
#define NETBPF_KERNEL_H

#include <linux/in6.h>
#include <bpf/bpf_core_read.h>

#define __core __attribute__((preserve_access_index))

struct ns_common {
	unsigned int inum;
} __core;

struct net {
	struct ns_common ns;
} __core;

struct nsproxy {
	struct net *net_ns;
} __core;

struct task_struct {
	struct nsproxy *nsproxy;
} __core;

struct net_device {
	int ifindex;
	struct {
		struct net *net;
	} nd_net;
} __core;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct {
		struct net *net;
	} skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	struct {
		__s64 counter;
	} skc_cookie;		/* drops --process: the socket's owner (netbpf.attrib) */
} __core;

struct sock {
	struct sock_common __sk_common;
	unsigned short sk_protocol;
} __core;

struct inet_sock {
	__be16 inet_sport;
} __core;

struct tcp_sock {
	__u32 total_retrans;
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 snd_cwnd;
	__u32 srtt_us;
} __core;

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned char *head;
	unsigned char *data;
	char cb[48];
} __core;

struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	__u16 tcp_gso_segs;
	__u16 tcp_flags;
} __core;

/* The classic tracepoint's record (tracefs events/skb/kfree_skb/format).
 * libbpf relocates an enum field only onto an enum of the same name or from
 * an anonymous one: `reason` is declared as the latter. */

struct trace_event_raw_kfree_skb {
	void *skbaddr;
	void *location;
	void *rx_sk;
	unsigned short protocol;
	enum { NETBPF_ANY_REASON } reason;
} __core;

/* Network namespace inode of a device or a socket; 0 when there is none. */
static __always_inline __u32 dev_netns(const struct net_device *dev)
{
	return dev ? BPF_CORE_READ(dev, nd_net.net, ns.inum) : 0;
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) : 0;
}

#endif

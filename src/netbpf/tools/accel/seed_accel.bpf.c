// SPDX-License-Identifier: GPL-2.0
/* The seed's program (bpf-developer-tutorial lesson 29-sockops,
 * bpf_contrack.bpf.c + bpf_redirect.bpf.c), as the anchor of `netbpf accel
 * bench`: it is not a netbpf tool and nothing else loads it.
 *
 * Kept as the tutorial wrote it: IPv4 127.0.0.1 <-> 127.0.0.1 only, keyed by
 * the 4-tuple plus the family, every message redirected, the helper's verdict
 * returned as is. Three changes: the programs are named netbpf_seed_* (so
 * that `netbpf status` knows them), no bpf_printk per connection (a trace
 * write would cost every handshake something the seed's users would not keep
 * in production), and linux/bpf.h instead of vmlinux.h.
 *
 * The returned verdict is why the bench runs it on IPv4-only servers: an
 * accepted socket of a dual-stack server is AF_INET6 (v4-mapped), so the
 * client's lookup with family AF_INET misses, bpf_msg_redirect_hash returns
 * SK_DROP and the client's send fails (EACCES).
 */
#include <netbpf/common.h>

#define LOCALHOST_IPV4 16777343 /* 127.0.0.1 in network order, read as a host u32 */

struct sock_key {
	__u32 sip;
	__u32 dip;
	__u32 sport;
	__u32 dport;
	__u32 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65535);
	__type(key, struct sock_key);
	__type(value, int);
} sock_ops_map SEC(".maps");

SEC("sockops")
int netbpf_seed_ops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

	if (op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	if (skops->remote_ip4 != LOCALHOST_IPV4 || skops->local_ip4 != LOCALHOST_IPV4)
		return 1;
	struct sock_key key = {
		.dip = skops->remote_ip4,
		.sip = skops->local_ip4,
		.sport = bpf_htonl(skops->local_port),
		.dport = skops->remote_port,
		.family = skops->family,
	};
	bpf_sock_hash_update(skops, &sock_ops_map, &key, BPF_NOEXIST);
	return 1;
}

SEC("sk_msg")
int netbpf_seed_msg(struct sk_msg_md *msg)
{
	if (msg->remote_ip4 != LOCALHOST_IPV4 || msg->local_ip4 != LOCALHOST_IPV4)
		return SK_PASS;
	struct sock_key key = {
		.sip = msg->remote_ip4,
		.dip = msg->local_ip4,
		.dport = bpf_htonl(msg->local_port),
		.sport = msg->remote_port,
		.family = msg->family,
	};
	return bpf_msg_redirect_hash(msg, &sock_ops_map, &key, BPF_F_INGRESS);
}

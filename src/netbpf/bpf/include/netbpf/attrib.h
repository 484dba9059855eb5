/* SPDX-License-Identifier: GPL-2.0 */
/* Which process owns a packet's socket, without kprobes or fentry.
 *
 * netbpf/attrib/attrib.bpf.c fills `attrib_socks` (socket cookie -> the
 * process that created the socket, its cgroup) from cgroup/sock_create, which
 * runs in the creating process; netbpf.attrib.tracker fills it at start for
 * sockets that already existed (sock_diag cookies, /proc). A capture program
 * includes this header, is given the tracker's maps before load
 * (bpf_map__reuse_fd), and finds a packet's socket:
 *   - tc egress: the skb's own socket (locally sent packets carry it);
 *   - tc ingress and XDP: a socket lookup by the packet's addresses and
 *     ports in the device's network namespace (bpf_skc_lookup_tcp,
 *     bpf_sk_lookup_udp), then the cookie read through bpf_rdonly_cast,
 *     since bpf_get_socket_cookie() takes only the skb there.
 * Cookies are never reused, so an entry can never name another socket: the
 * map is an LRU and entries stay after close (a FIN or the data still queued
 * leave after the close() that would delete them). An evicted entry or a
 * socket that netbpf never saw is "unknown", never guessed.
 */
#ifndef NETBPF_ATTRIB_H
#define NETBPF_ATTRIB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define ATTRIB_COMM_LEN 16

/* The owner of one socket (value of attrib_socks). */
struct attrib_sock {
	__u32 pid;		/* the process (tgid) that created the socket */
	__u32 tid;		/* its thread */
	__u64 cgroup_id;	/* its cgroup v2 (the directory's inode number) */
	char comm[ATTRIB_COMM_LEN];
	__u32 selected;		/* in the cgroup subtree the tool selects (--cgroup, --container) */
	__u32 origin;		/* enum attrib_origin */
};

enum attrib_origin {
	ATTRIB_CREATED = 1,	/* cgroup/sock_create, in the creating process */
	ATTRIB_FOUND,		/* already open at start: sock_diag + /proc */
	ATTRIB_ACCEPTED,	/* accept() returned it to this process */
};

/* What a capture record says about its packet's socket. */
enum attrib_status {
	ATTRIB_OWNER = 0,	/* the socket and its owner are known */
	ATTRIB_NO_SOCKET,	/* no local socket (forwarded, or nobody listens) */
	ATTRIB_UNKNOWN_OWNER,	/* a local socket that netbpf never saw being made (or evicted) */
	ATTRIB_TIME_WAIT,	/* a TCP socket in TIME-WAIT: its process has closed it */
	ATTRIB_NOT_LOOKED_UP,	/* received, and not TCP or UDP right after an IP header (VLAN
				 * tag at XDP, IPv6 extension header, later fragment, ICMP...):
				 * the lookup needs ports */
	ATTRIB_STATUSES,
};

/* Written after a packet's bytes (pcapng: as a local-use option of the EPB,
 * which user space turns into the packet's comment). */
struct attrib_record {
	__u64 cookie;
	__u32 status;		/* enum attrib_status */
	__u32 pid;
	__u32 tid;
	__u32 origin;
	__u64 cgroup_id;
	char comm[ATTRIB_COMM_LEN];
};

#define ATTRIB_OPTION_CODE 0x8a77	/* pcapng: 0x8000 and above are for local use */
#define ATTRIB_LABEL_LEN 512		/* a cgroup's path and container (Kubernetes' are long) */
#define ATTRIB_COMMENT_MAX 640		/* the comment's text, at most */
#define ATTRIB_COPY_CHUNK 32		/* attrib_comment: a cached text is copied in these */
#define ATTRIB_LABEL_MISSES ATTRIB_STATUSES	/* attrib_counters: comments with a cgroup id only */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);		/* socket cookie */
	__type(value, struct attrib_sock);
} attrib_socks SEC(".maps");

/* The command of a process after exec (sched_process_exec), so that a socket
 * created before an exec shows the command that uses it now. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);		/* tgid */
	__type(value, char[ATTRIB_COMM_LEN]);
} attrib_comms SEC(".maps");

/* cgroup id -> "PATH[ container RUNTIME:ID[ pod UID]]", written by user space
 * (netbpf.attrib.tracker), so that the kernel can write whole comments. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* memory for the cgroups there are, not 8 MiB */
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, char[ATTRIB_LABEL_LEN]);
} attrib_labels SEC(".maps");

/* [0]: bumped whenever an owner's answer may change (a socket made, accepted,
 * a process's exec): the packet side's per-CPU answer (attrib_cache) is used
 * only while this is what it was when the answer was made. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} attrib_gen SEC(".maps");

#ifndef NETBPF_ATTRIB_NO_PACKETS
/* -- the packet side -------------------------------------------------------------------- */

/* The last answer on this CPU: a flood of one socket's packets (the costly
 * case) looks its owner up and writes its comment once, not per packet.
 * Valid for `cookie` while attrib_gen[0] == `gen` (cookies are never reused;
 * labels, once written, do not change). */
struct attrib_cache {
	__u64 cookie;
	__u64 gen;
	struct attrib_record rec;
	__u32 selected;		/* attrib_sock.selected */
	__u32 text_len;		/* the comment's text (attrib_comment), 0: not made yet */
	char text[ATTRIB_COMMENT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct attrib_cache);
} attrib_cache SEC(".maps");

#define __attrib_core __attribute__((preserve_access_index))

struct sock___attrib;

struct sock_common___attrib {
	struct {
		__s64 counter;
	} skc_cookie;
	struct sock___attrib *skc_listener;	/* request sockets (in an anonymous union) */
} __attrib_core;

struct sock___attrib {
	struct sock_common___attrib __sk_common;
} __attrib_core;

struct request_sock___attrib {
	struct sock_common___attrib __req_common;	/* rsk_listener is __req_common.skc_listener */
} __attrib_core;

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define ATTRIB_TCP_TIME_WAIT 6
#define ATTRIB_TCP_NEW_SYN_RECV 12

/* The cookie of a socket (TCP from a lookup, or any skb's): a request socket
 * (a handshake in progress) counts as its listener's, whose process will
 * accept it; a TIME-WAIT socket has no process any more. (UDP sockets are
 * never in those two states.) */
static __always_inline __u64 attrib_tcp_cookie(struct bpf_sock *sk, __u32 *status)
{
	struct sock___attrib *s;
	struct request_sock___attrib *req;
	__u32 state = sk->state;

	*status = ATTRIB_UNKNOWN_OWNER;
	if (state == ATTRIB_TCP_TIME_WAIT) {
		*status = ATTRIB_TIME_WAIT;
		return 0;
	}
	if (state == ATTRIB_TCP_NEW_SYN_RECV) {
		req = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct request_sock___attrib));
		/* A pointer read out of a union comes back as a number: cast it too. */
		s = bpf_rdonly_cast(req->__req_common.skc_listener,
				    bpf_core_type_id_kernel(struct sock___attrib));
		if (!s)
			return 0;
		return s->__sk_common.skc_cookie.counter;
	}
	s = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___attrib));
	return s->__sk_common.skc_cookie.counter;
}

/* The socket a received packet is for, looked up as the stack will. */
static __always_inline __u64 attrib_lookup(void *ctx, void *data, void *data_end, __u32 *status)
{
	struct ethhdr *eth = data;
	struct bpf_sock_tuple tuple = {};
	struct bpf_sock *sk;
	__u32 size, proto, l4;
	__u16 *ports;
	__u64 cookie;

	*status = ATTRIB_NOT_LOOKED_UP;
	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return 0;
		if (ip->frag_off & bpf_htons(0x1fff))	/* a later fragment has no ports */
			return 0;
		tuple.ipv4.saddr = ip->saddr;
		tuple.ipv4.daddr = ip->daddr;
		size = sizeof(tuple.ipv4);
		proto = ip->protocol;
		l4 = sizeof(*eth) + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		__builtin_memcpy(tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, &ip6->daddr, 16);
		size = sizeof(tuple.ipv6);
		proto = ip6->nexthdr;	/* extension headers: not looked through */
		l4 = sizeof(*eth) + sizeof(*ip6);
	} else {
		return 0;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	if (l4 > 1024)
		return 0;
	ports = data + l4;
	if ((void *)(ports + 2) > data_end)
		return 0;
	if (size == sizeof(tuple.ipv4)) {
		tuple.ipv4.sport = ports[0];
		tuple.ipv4.dport = ports[1];
	} else {
		tuple.ipv6.sport = ports[0];
		tuple.ipv6.dport = ports[1];
	}
	*status = ATTRIB_NO_SOCKET;
	/* Two paths: the verifier refuses one load through a socket and a
	 * sock_common pointer alike. */
	if (proto == IPPROTO_TCP) {
		sk = bpf_skc_lookup_tcp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
		if (!sk)
			return 0;
		cookie = attrib_tcp_cookie(sk, status);
		bpf_sk_release(sk);
		return cookie;
	}
	sk = bpf_sk_lookup_udp(ctx, &tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	*status = ATTRIB_UNKNOWN_OWNER;
	cookie = ((struct sock___attrib *)bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___attrib)))
			 ->__sk_common.skc_cookie.counter;
	bpf_sk_release(sk);
	return cookie;
}

/* Fill `rec` for a packet whose socket has `cookie` (0: none found); return
 * this CPU's cached answer for it (its rec, selected), or 0 when the owner is
 * not known. */
static __always_inline struct attrib_cache *attrib_owner(__u64 cookie, __u32 status,
							  struct attrib_record *rec)
{
	struct attrib_sock *owner;
	struct attrib_cache *cache;
	__u32 zero = 0;
	__u64 *gen, now;
	char *comm;

	rec->cookie = cookie;
	rec->status = status;
	if (!cookie)
		return 0;
	cache = bpf_map_lookup_elem(&attrib_cache, &zero);
	gen = bpf_map_lookup_elem(&attrib_gen, &zero);
	if (!cache || !gen)
		return 0;
	now = *gen;	/* read before the owner: a change meanwhile makes the next packet look again */
	if (cache->cookie == cookie && cache->gen == now) {
		__builtin_memcpy(rec, &cache->rec, sizeof(*rec));
		return cache;
	}
	owner = bpf_map_lookup_elem(&attrib_socks, &cookie);
	if (!owner) {
		rec->status = ATTRIB_UNKNOWN_OWNER;
		return 0;
	}
	rec->status = ATTRIB_OWNER;
	rec->pid = owner->pid;
	rec->tid = owner->tid;
	rec->origin = owner->origin;
	rec->cgroup_id = owner->cgroup_id;
	comm = bpf_map_lookup_elem(&attrib_comms, &owner->pid);
	__builtin_memcpy(rec->comm, comm ? comm : owner->comm, ATTRIB_COMM_LEN);
	cache->cookie = cookie;
	cache->gen = now;
	__builtin_memcpy(&cache->rec, rec, sizeof(*rec));
	cache->selected = owner->selected;
	cache->text_len = 0;
	return cache;
}

/* Decimal digits of `v` at `dst` (room for 16); returns how many. */
static __always_inline __u32 attrib_put_decimal(char *dst, __u32 v)
{
	__u32 n = 1, t = v;

	for (int i = 0; i < 9; i++) {
		if (t < 10)
			break;
		t /= 10;
		n++;
	}
	for (int i = 0; i < 10; i++) {
		if (i >= n)
			break;
		dst[(n - 1 - i) & 15] = '0' + v % 10;	/* the mask: a bound the verifier sees */
		v /= 10;
	}
	return n;
}

/* "pid P comm C cgroup LABEL" by copies: bpf_snprintf costs ~600 ns a call
 * (it parses its format each time); this is the comment of nearly every
 * packet. Returns the text's length, or 0. */
static __always_inline __u32 attrib_owned_text(char *text, struct attrib_record *owner, char *label)
{
	__u32 pos = 4;
	long n;

	__builtin_memcpy(text, "pid ", 4);
	pos += attrib_put_decimal(text + pos, owner->pid);
	if (pos > 14)
		return 0;
	__builtin_memcpy(text + pos, " comm ", 6);
	pos += 6;
	n = bpf_probe_read_kernel_str(text + pos, ATTRIB_COMM_LEN, owner->comm);
	if (n < 1)
		return 0;
	pos += n - 1;
	if (pos > 20 + ATTRIB_COMM_LEN)
		return 0;
	__builtin_memcpy(text + pos, " cgroup ", 8);
	pos += 8;
	n = bpf_probe_read_kernel_str(text + pos, ATTRIB_LABEL_LEN, label);
	if (n < 1)
		return 0;
	pos += n - 1;
	if (pos > ATTRIB_COMMENT_MAX - 1)
		return 0;
	return pos;
}

/* Write the owner as a pcapng opt_comment and opt_endofopt at `opt` (inside
 * a block of `blocks`, with ATTRIB_COMMENT_MAX + 12 bytes of room); return
 * how many bytes the options take (a multiple of 4), or 0 on failure. The
 * texts are netbpf.attrib.tracker's (Owner.comment), tested against tshark. */
static __always_inline __u32 attrib_comment(void *opt, struct attrib_record *owner, void *counters)
{
	static const char owned[] = "pid %u comm %s cgroup %s";
	static const char owned_id[] = "pid %u comm %s cgroup id %llu";
	static const char shared[] = "pid %u comm %s cgroup %s (socket open in %u processes at start: lowest pid shown)";
	static const char shared_id[] = "pid %u comm %s cgroup id %llu (socket open in %u processes at start: lowest pid shown)";
	static const char no_socket[] = "no local socket";
	static const char unknown[] = "local socket, owner unknown";
	static const char time_wait[] = "local socket in TIME-WAIT, closed by its process";
	static const char not_looked_up[] = "owner unknown (received, not TCP/UDP right after IP: no socket lookup)";
	__u64 args[4];
	int is_shared = owner->origin == ATTRIB_FOUND && owner->tid > 1;	/* tid: holders */
	struct attrib_cache *cache;
	__u32 zero = 0, cached;
	char *label;
	long n;
	__u32 len;

	switch (owner->status) {
	case ATTRIB_OWNER:
		cache = bpf_map_lookup_elem(&attrib_cache, &zero);
		cached = cache && cache->cookie == owner->cookie ? cache->text_len : 0;
		if (cached && cached < ATTRIB_COMMENT_MAX) {
			/* attrib_owner() just answered from the cache, or made it.
			 * Copied inline, 32 bytes at a time: bpf_probe_read_kernel
			 * cost ~25 ns a packet (a helper call, a fault-safe copy).
			 * The last chunk may write past the text: the padding,
			 * opt_endofopt and the block's trailer are written over it
			 * below, and beyond the record the block has room (12 +
			 * ATTRIB_COMMENT_MAX) that the next record overwrites. */
			for (int i = 0; i < ATTRIB_COMMENT_MAX / ATTRIB_COPY_CHUNK; i++) {
				if (i * ATTRIB_COPY_CHUNK >= cached)
					break;
				__builtin_memcpy(opt + 4 + i * ATTRIB_COPY_CHUNK,
						 cache->text + i * ATTRIB_COPY_CHUNK, ATTRIB_COPY_CHUNK);
			}
			n = cached + 1;
			break;
		}
		args[0] = owner->pid;
		args[1] = (__u64)(long)owner->comm;
		args[3] = owner->tid;
		label = bpf_map_lookup_elem(&attrib_labels, &owner->cgroup_id);
		n = label && !is_shared ? attrib_owned_text(opt + 4, owner, label) : 0;
		if (n) {
			/* Kept for this socket's next packets (not the other texts:
			 * a label missing now may be written by the next walk). */
			cached = n;
			if (cache && cache->cookie == owner->cookie && cached < ATTRIB_COMMENT_MAX) {
				bpf_probe_read_kernel(cache->text, cached, opt + 4);
				cache->text_len = cached;
			}
			n += 1;	/* as bpf_snprintf counts: with the NUL */
		} else if (label) {
			args[2] = (__u64)(long)label;
			if (is_shared)
				n = bpf_snprintf(opt + 4, ATTRIB_COMMENT_MAX, shared, args, sizeof(args));
			else
				n = bpf_snprintf(opt + 4, ATTRIB_COMMENT_MAX, owned, args, 3 * sizeof(__u64));
		} else {
			/* A cgroup made since the last walk: said as its id. */
			args[2] = owner->cgroup_id;
			netbpf_add(counters, ATTRIB_LABEL_MISSES, 1);
			if (is_shared)
				n = bpf_snprintf(opt + 4, ATTRIB_COMMENT_MAX, shared_id, args, sizeof(args));
			else
				n = bpf_snprintf(opt + 4, ATTRIB_COMMENT_MAX, owned_id, args, 3 * sizeof(__u64));
		}
		break;
	case ATTRIB_NO_SOCKET:
		__builtin_memcpy(opt + 4, no_socket, sizeof(no_socket));
		n = sizeof(no_socket);
		break;
	case ATTRIB_TIME_WAIT:
		__builtin_memcpy(opt + 4, time_wait, sizeof(time_wait));
		n = sizeof(time_wait);
		break;
	case ATTRIB_NOT_LOOKED_UP:
		__builtin_memcpy(opt + 4, not_looked_up, sizeof(not_looked_up));
		n = sizeof(not_looked_up);
		break;
	default:
		__builtin_memcpy(opt + 4, unknown, sizeof(unknown));
		n = sizeof(unknown);
	}
	if (n <= 1)
		return 0;
	len = n - 1;	/* bpf_snprintf counts the NUL; output truncated at the maximum */
	if (len > ATTRIB_COMMENT_MAX - 1)
		len = ATTRIB_COMMENT_MAX - 1;
	*(__u32 *)opt = 1 | len << 16;	/* opt_comment */
	*(__u32 *)(opt + 4 + len) = 0;	/* the padding (and the NUL): zeroes */
	len = (len + 3) & ~3U;
	*(__u32 *)(opt + 4 + len) = 0;	/* opt_endofopt */
	return 4 + len + 4;
}
#endif /* NETBPF_ATTRIB_NO_PACKETS */

#endif

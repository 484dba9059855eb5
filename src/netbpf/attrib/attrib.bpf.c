// SPDX-License-Identifier: GPL-2.0
/* netbpf attribution: who created each socket (see netbpf/attrib.h).
 *
 * cgroup/sock_create runs inside socket(), in the creating process, for every
 * AF_INET/AF_INET6 socket of the cgroup it is attached to and below: attached
 * to the cgroup v2 root it sees them all, with no kprobe. Its socket cookie
 * is made here (bpf_get_socket_cookie generates it), which is also what lets
 * the packet side read it later without a helper.
 */
#define NETBPF_ATTRIB_NO_PACKETS
#include <netbpf/common.h>
#include <netbpf/attrib.h>
#include <bpf/bpf_tracing.h>

NETBPF_BTF_EXPORT(attrib_sock);
NETBPF_BTF_EXPORT(attrib_record);
NETBPF_BTF_EXPORT(attrib_conn);

/* A TCP connection's local end, by its addresses (netbpf.attrib.connections):
 * which socket it is, for tools that see a connection's packets without its
 * socket (http's packet socket, its kernel records). Written when the
 * handshake completes on either side, so a process that exits at once is
 * still found; entries stay after close, as attrib_socks' do. */
struct attrib_conn {
	__u64 netns;		/* bpf_get_netns_cookie: the same addresses in two namespaces differ */
	__u32 family;		/* AF_INET, AF_INET6 (an IPv4-mapped IPv6 socket: AF_INET) */
	__u16 local_port;	/* host order */
	__u16 remote_port;
	__u32 local[4];		/* network order; IPv4 in [0], the rest zero */
	__u32 remote[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct attrib_conn);
	__type(value, __u64);	/* socket cookie */
} attrib_conns SEC(".maps");

/* The network namespaces attrib_conns has seen (cookie -> 1): user space
 * looks an address up in each of them (few, next to the connections). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} attrib_netns SEC(".maps");

/* [0]: how many namespaces attrib_netns has been given; user space reads the
 * set again only when this changed. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} attrib_netns_added SEC(".maps");

/* Set before load: the cgroup subtree the tool selects (0: none), and its
 * depth below the root, for bpf_get_current_ancestor_cgroup_id(). */
const volatile __u64 select_cgroup = 0;
const volatile __u32 select_level = 0;
/* Set before load: keep attrib_conns (a tool that finds connections by their
 * addresses, http --process); else that map is left empty, and small. */
const volatile __u32 keep_conns = 0;

/* An owner or a command changed: the packet side's cached answers are old. */
static __always_inline void changed(void)
{
	__u32 zero = 0;
	__u64 *gen = bpf_map_lookup_elem(&attrib_gen, &zero);

	if (gen)
		__sync_fetch_and_add(gen, 1);
}

/* The current thread owns the socket `cookie`: record it, its cgroup and its
 * command in attrib_socks. */
static __always_inline void own(__u64 cookie, __u32 origin, struct attrib_sock *owner)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	owner->pid = pid_tgid >> 32;
	owner->tid = (__u32)pid_tgid;
	owner->cgroup_id = bpf_get_current_cgroup_id();
	owner->origin = origin;
	bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	if (select_cgroup)
		owner->selected = bpf_get_current_ancestor_cgroup_id(select_level) == select_cgroup;
	bpf_map_update_elem(&attrib_socks, &cookie, owner, BPF_ANY);
}

SEC("cgroup/sock_create")
int netbpf_attrsock(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct attrib_sock owner = {};

	own(cookie, ATTRIB_CREATED, &owner);
	/* A process that forked without exec has a pid that attrib_comms may
	 * hold for a dead process: its own command now. */
	bpf_map_update_elem(&attrib_comms, &owner.pid, owner.comm, BPF_ANY);
	changed();
	return 1;	/* allow: attribution never refuses a socket */
}

/* accept(): the socket it returns was made by the kernel from a listener,
 * without sock_create. Its cookie is made when the handshake completes (so
 * that the accept below can read it), and accept() names the process. */
SEC("sockops")
int netbpf_attrsops(struct bpf_sock_ops *skops)
{
	struct attrib_conn conn = {};
	__u64 cookie;
	__u32 one = 1;

	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);	/* made here for accept's tracepoint */
	if (!keep_conns)
		return 1;
	conn.netns = bpf_get_netns_cookie(skops);
	conn.local_port = skops->local_port;
	/* remote_port: the network-order port in the upper half on little-endian
	 * (the kernel shifts it there), which bpf_ntohl turns into the port. */
	conn.remote_port = bpf_ntohl(skops->remote_port);
	if (skops->family == 2 /* AF_INET */ ||
	    (skops->local_ip6[0] == 0 && skops->local_ip6[1] == 0 &&
	     skops->local_ip6[2] == bpf_htonl(0xffff))) {
		conn.family = 2;
		conn.local[0] = skops->local_ip4;
		conn.remote[0] = skops->remote_ip4;
	} else {
		conn.family = 10;	/* AF_INET6 */
		netbpf_ip6_copy(conn.local, skops->local_ip6);
		netbpf_ip6_copy(conn.remote, skops->remote_ip6);
	}
	bpf_map_update_elem(&attrib_conns, &conn, &cookie, BPF_ANY);
	/* After the connection: whoever sees the namespace finds it there. */
	if (!bpf_map_lookup_elem(&attrib_netns, &conn.netns)) {
		__u32 zero = 0;
		__u64 *added;

		bpf_map_update_elem(&attrib_netns, &conn.netns, &one, BPF_ANY);
		added = bpf_map_lookup_elem(&attrib_netns_added, &zero);
		if (added)
			__sync_fetch_and_add(added, 1);
	}
	return 1;
}

#define __core __attribute__((preserve_access_index))

struct sock_common___acc {
	struct {
		__s64 counter;
	} skc_cookie;
} __core;

struct sock___acc {
	struct sock_common___acc __sk_common;
} __core;

struct socket___acc {
	struct sock___acc *sk;
} __core;

struct file___acc {
	void *private_data;
} __core;

struct fdtable___acc {
	unsigned int max_fds;
	struct file___acc **fd;
} __core;

struct files_struct___acc {
	struct fdtable___acc *fdt;
} __core;

struct task_struct___acc {
	struct files_struct___acc *files;
} __core;

struct accept_exit {
	__u64 common;
	int nr;
	long ret;
};

static __always_inline int accepted(struct accept_exit *ctx)
{
	struct task_struct___acc *task = (void *)bpf_get_current_task();
	struct fdtable___acc *fdt;
	struct file___acc *file;
	struct socket___acc *sock;
	struct attrib_sock owner = {};
	__u64 cookie;
	long fd = ctx->ret;

	if (fd < 0)
		return 0;
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	bpf_probe_read_kernel(&file, sizeof(file), BPF_CORE_READ(fdt, fd) + fd);
	if (!file)
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return 0;
	cookie = BPF_CORE_READ(sock, sk, __sk_common.skc_cookie.counter);
	if (!cookie)
		return 0;	/* no handshake seen by the sockops program: stays unknown */
	own(cookie, ATTRIB_ACCEPTED, &owner);
	changed();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int netbpf_attracc4(struct accept_exit *ctx)
{
	return accepted(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int netbpf_attracc(struct accept_exit *ctx)
{
	return accepted(ctx);
}

SEC("tracepoint/sched/sched_process_exec")
int netbpf_attrexec(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	char comm[ATTRIB_COMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	bpf_map_update_elem(&attrib_comms, &pid, comm, BPF_ANY);
	changed();
	return 0;
}


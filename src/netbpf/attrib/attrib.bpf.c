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

NETBPF_BTF_EXPORT(attrib_sock);
NETBPF_BTF_EXPORT(attrib_record);

/* Set before load: the cgroup subtree the tool selects (0: none), and its
 * depth below the root, for bpf_get_current_ancestor_cgroup_id(). */
const volatile __u64 select_cgroup = 0;
const volatile __u32 select_level = 0;

SEC("cgroup/sock_create")
int netbpf_attrib_sock_create(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct attrib_sock owner = {};

	owner.pid = pid_tgid >> 32;
	owner.tid = (__u32)pid_tgid;
	owner.cgroup_id = bpf_get_current_cgroup_id();
	owner.origin = ATTRIB_CREATED;
	bpf_get_current_comm(owner.comm, sizeof(owner.comm));
	if (select_cgroup)
		owner.selected = bpf_get_current_ancestor_cgroup_id(select_level) == select_cgroup;
	bpf_map_update_elem(&attrib_socks, &cookie, &owner, BPF_ANY);
	/* A process that forked without exec has a pid that attrib_comms may
	 * hold for a dead process: its own command now. */
	bpf_map_update_elem(&attrib_comms, &owner.pid, owner.comm, BPF_ANY);
	return 1;	/* allow: attribution never refuses a socket */
}

SEC("tracepoint/sched/sched_process_exec")
int netbpf_attrib_exec(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	char comm[ATTRIB_COMM_LEN] = {};

	bpf_get_current_comm(comm, sizeof(comm));
	bpf_map_update_elem(&attrib_comms, &pid, comm, BPF_ANY);
	return 0;
}


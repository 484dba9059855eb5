/* SPDX-License-Identifier: GPL-2.0 */
/* What accel.bpf.c and accel.py share: the sockhash key, per-socket state,
 * the control record and the counter indexes. */
#ifndef NETBPF_ACCEL_H
#define NETBPF_ACCEL_H

#include <linux/types.h>

/* One end of a local TCP connection, as the sockhash knows it.
 * Addresses are IPv6, IPv4 written as ::ffff:a.b.c.d: an IPv4 client and
 * the IPv4-mapped socket that a dual-stack server (iperf3 -s) accepts for
 * it then describe the same 4-tuple and find each other. The network
 * namespace cookie keeps equal 4-tuples of different namespaces apart
 * (each namespace has its own 127.0.0.1). */
struct accel_key {
	__u64 netns;
	__u32 local_ip[4];	/* network byte order */
	__u32 remote_ip[4];	/* network byte order */
	__u32 local_port;	/* host byte order */
	__u32 remote_port;	/* host byte order */
};

/* Per stored socket, keyed like the sockhash. */
struct accel_sock_state {
	__u32 small_run;	/* small messages sent in a row, none received between */
	__u32 tcp_only;		/* an accel_tcp_reason: this socket sends through TCP for good */
	__u64 queued_at;	/* kernel address of this socket's psock->msg_tot_len, 0: unknown */
};

enum accel_tcp_reason {
	ACCEL_REDIRECTING = 0,
	ACCEL_TCP_NO_PEER = 1,	/* its peer was not in the map (connected to a socket outside the cgroup, ...) */
	ACCEL_TCP_SMALL_WRITES = 2,	/* it streams small writes, which TCP coalesces better */
	ACCEL_TCP_BACKLOG = 3,	/* its peer left too much redirected data unread */
};

struct accel_control {
	__u32 draining;		/* set by `disable`: every message takes TCP from now on */
	__u32 _pad;
};

enum accel_counter {
	ACCEL_SOCKETS_ADDED,	/* established local sockets stored in the sockhash */
	ACCEL_SOCKETS_FAILED,	/* the sockhash (or the state map) refused one */
	ACCEL_SOCKETS_NO_PEER,	/* sockets whose peer was not in the map: TCP for good */
	ACCEL_SOCKETS_SMALL,	/* sockets moved back to TCP after a run of small writes */
	ACCEL_SOCKETS_BACKLOG,	/* sockets moved back to TCP: the peer was not reading */
	ACCEL_MSG_REDIRECTED,	/* sendmsg chunks handed straight to the peer socket */
	ACCEL_BYTES_REDIRECTED,
	ACCEL_MSG_TCP,		/* sendmsg chunks of stored sockets that went through TCP */
	ACCEL_BYTES_TCP,
	ACCEL_MAX_UNREAD,	/* not a sum: the most unread redirected bytes seen at a peer (per CPU) */
	ACCEL_COUNTERS,
};

#endif /* NETBPF_ACCEL_H */

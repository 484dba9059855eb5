/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between tcp.bpf.c and netbpf/tools/tcp/events.py. */
#ifndef NETBPF_TCP_H
#define NETBPF_TCP_H

enum tcp_event_kind {
	TCP_EV_RETRANS = 1,	/* tcp:tcp_retransmit_skb */
	TCP_EV_SYNACK_RETRANS,	/* tcp:tcp_retransmit_synack */
	TCP_EV_RESET_SENT,	/* tcp:tcp_send_reset */
	TCP_EV_RESET_RECEIVED,	/* tcp:tcp_receive_reset */
	TCP_EV_STATE,		/* sock:inet_sock_set_state */
	TCP_EV_CLOSE,		/* the CLOSE of a connection seen from its start: its life */
	TCP_EV_KINDS,
};

/* One TCP event. Addresses and ports are the socket's: local, then remote
 * (for a reset sent without a socket, those of the packet it answers). */
struct tcp_event {
	__u64 ts_ns;
	__u64 skaddr;		/* identifies the socket while it lives */
	__u64 duration_ns;	/* CLOSE: since the first state change */
	__u64 rx_bytes;		/* CLOSE: tcp_sock.bytes_received */
	__u64 tx_bytes;		/* CLOSE: tcp_sock.bytes_acked */
	__u32 netns;
	__u32 pid;		/* process context only: STATE, CLOSE (who opened/closed) */
	__u8 kind;		/* enum tcp_event_kind */
	__u8 family;		/* 4 or 6 */
	__u8 oldstate;		/* STATE; else the socket's state */
	__u8 newstate;
	__u16 lport;		/* host order */
	__u16 rport;
	__u32 reason;		/* RESET_SENT: enum sk_rst_reason */
	__u32 segs;		/* RETRANS: segments retransmitted */
	__s32 err;		/* RETRANS: 0, or why the retransmit failed */
	__u32 total_retrans;	/* RETRANS, CLOSE: tcp_sock.total_retrans */
	__u32 srtt_us;		/* RETRANS, CLOSE: smoothed RTT */
	__u8 laddr[16];		/* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	char comm[16];
	__u64 cgroup_id;	/* with pid: that process's cgroup v2 (netbpf.attrib names its container) */
};

/* Key of the in-kernel summary: per flow, or (by remote) with the local side zero. */
struct tcp_key {
	__u32 netns;
	__u8 family;
	__u8 _pad;
	__u16 lport;
	__u16 rport;
	__u16 _pad2;
	__u8 laddr[16];
	__u8 raddr[16];
};

struct tcp_counts {
	__u64 retrans_segs;
	__u64 retrans_failed;
	__u64 resets_sent;
	__u64 resets_received;
	__u64 closed;
	__u64 synack_retrans;
};

/* Per-CPU totals (the `totals` array), for the exit line and --metrics. */
enum tcp_total {
	TCP_T_RETRANS_SEGS = 0,
	TCP_T_RETRANS_FAILED,
	TCP_T_SYNACK_RETRANS,
	TCP_T_RESETS_SENT,
	TCP_T_RESETS_RECEIVED,
	TCP_T_STATE_CHANGES,
	TCP_T_CLOSED,
	TCP_T_FILTERED,
	TCP_T_SUMMARY_FULL,
	TCP_TOTALS,
};

#endif

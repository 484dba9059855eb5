/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between selftest.bpf.c and netbpf/bpf/selftest.py. */
#ifndef NETBPF_SELFTEST_H
#define NETBPF_SELFTEST_H

enum selftest_counter {
	ST_XDP = 0,
	ST_TC,
	ST_SOCKET,
	ST_SOCKOPS_ESTABLISHED,
	ST_SK_MSG,
	ST_SK_MSG_BYTES,
	ST_TRACEPOINT,
	ST_TP_BTF,
	ST_TP_BTF_MATCHED,
	ST_COUNTERS,
};

/* One record of the ring buffer benchmark: 64 bytes. */
struct selftest_record {
	__u64 seq;
	__u64 cpu;
	__u8 payload[48];
};

/* Header of a perf event array sample; packet bytes follow. */
struct selftest_sample {
	__u32 cap_len;
	__u32 len;
};

#endif

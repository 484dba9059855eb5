/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between dump.bpf.c and netbpf/tools/dump/ring.py.
 *
 * The capture program writes finished pcap (or pcapng) records straight into
 * memory that Python has mapped: per CPU, a ring of `blocks` (like the blocks
 * of a TPACKET_V3 socket, which is how tcpdump receives packets). Python
 * writes a block's bytes to the output file as they are: no per-packet work
 * in Python when the output is a file.
 */
#ifndef NETBPF_DUMP_H
#define NETBPF_DUMP_H

enum dump_counter {
	DUMP_SEEN = 0,	/* packets that reached the program */
	DUMP_MATCHED,	/* ... that the filter kept */
	DUMP_LOST,	/* ... that found no room (every block still held by Python) */
	DUMP_COUNTERS,
};

enum dump_format {
	DUMP_PCAP = 0,	/* 16-byte record header, then the packet */
	DUMP_PCAPNG,	/* Enhanced Packet Block, interface 0 */
};

enum dump_hook {
	DUMP_HOOK_XDP = 0,
	DUMP_HOOK_TC_INGRESS,
	DUMP_HOOK_TC_EGRESS,
};

/* Per CPU: which block the program fills, which ones Python still holds.
 * The two sides write different cache lines. */
struct dump_ring {
	__u64 produced;		/* BPF: sequence number of the block being filled */
	__u64 _pad0[7];
	__u64 consumed;		/* Python: blocks below this number are free again */
	__u64 clock_offset;	/* Python: CLOCK_REALTIME - CLOCK_MONOTONIC, in ns */
	__u32 waiting;		/* Python sleeps: wake it for the next record */
	__u32 _pad1;
	__u64 _pad2[5];
};

/* The head of every block; `len` bytes of records follow it. */
struct dump_block {
	__u32 len;	/* bytes of whole records (the last step of writing one) */
	__u32 count;	/* records */
	__u64 seq;	/* which lap of the ring this block holds */
	__u64 _pad[6];
};

#define DUMP_PCAP_HEADER 16
#define DUMP_EPB_HEADER 28	/* type, length, interface, ts high, ts low, caplen, len */
#define DUMP_EPB_TRAILER 4
/* With attribution: the owner option (4 + struct attrib_record) and opt_endofopt. */
#define DUMP_ATTRIB_OPTIONS (4 + 48 + 4)
#define ATTRIB_PULL 128	/* tc ingress, no filter: header bytes the socket lookup reads */

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* Shared between http.bpf.c and netbpf/tools/http/__init__.py. */
#ifndef NETBPF_HTTP_H
#define NETBPF_HTTP_H

#define HTTP_MAX_PORTS 16
#define HTTP_MAX_IFINDEXES 8
#define HTTP_MAX_VXLAN_PORTS 4

/* Per-CPU counters, summed by user space. */
enum http_counter {
	HTTP_FRAMES_SEEN = 0,	/* every frame the socket filter ran on */
	HTTP_FRAMES_KEPT,	/* frames of a target port handed to the ring */
	HTTP_BYTES_KEPT,
	HTTP_ACKS_SKIPPED,	/* target-port segments without payload or SYN/FIN/RST */
	HTTP_OTHER_IFACE,	/* frames of interfaces not asked for (-i a,b) */
	HTTP_KEPT_IPIP,		/* kept frames that were inside IPIP / IPv6-in-IP */
	HTTP_KEPT_VXLAN,	/* kept frames that were inside VXLAN */
	HTTP_PROTO_TCP,		/* innermost IP protocol of every frame seen (the seed's */
	HTTP_PROTO_UDP,		/* per-protocol count) */
	HTTP_PROTO_ICMP,
	HTTP_PROTO_OTHER,
	HTTP_NOT_IP,		/* ARP, LLDP, ... */
	HTTP_MALFORMED,		/* shorter than its headers claim */
	/* Counting in the kernel (config.count_in_kernel): see counted.py. */
	HTTP_K_SEGMENTS,	/* payload segments the kernel parser ran on */
	HTTP_K_REQUESTS,	/* request heads counted */
	HTTP_K_RESPONSES,	/* final response heads paired with their request */
	HTTP_K_INTERIM,		/* 1xx other than 101 */
	HTTP_K_RETRANSMITTED,	/* segments whose bytes were all seen already (or seen twice) */
	HTTP_K_CONNECTIONS,	/* connections followed from their SYN */
	HTTP_K_MIDSTREAM,	/* connections first seen after their SYN: not followed */
	HTTP_K_LOST_GAP,	/* not followed from a point on: a sequence gap / reordering */
	HTTP_K_LOST_HEAD_SPLIT,	/* a message head not whole in one segment */
	HTTP_K_LOST_HEAD_LONG,	/* a head longer than HTTP_HEAD_MAX */
	HTTP_K_LOST_NOT_HTTP,	/* a message start that is not HTTP/1.x */
	HTTP_K_LOST_LENGTH,	/* a body length the kernel cannot tell */
	HTTP_K_LOST_CHUNK,	/* a chunk-size line split over segments, or trailers */
	HTTP_K_LOST_PIPELINE,	/* more outstanding requests than HTTP_FIFO */
	HTTP_K_LOST_STEPS,	/* more messages in one segment than the parser's loop */
	HTTP_K_LOST_UNSYNCED,	/* payload before the handshake was seen both ways */
	HTTP_K_ORPHANS,		/* responses on a followed connection with no request */
	HTTP_K_HTTP2,		/* connections opening with the HTTP/2 preface */
	HTTP_K_TLS,		/* connections opening with a TLS handshake */
	HTTP_K_TUNNELS,		/* 101 Switching Protocols / CONNECT: not HTTP after that */
	HTTP_K_HANDED_OFF,	/* frames of unfollowed connections kept for user space */
	HTTP_K_RECORDS,		/* transaction records written to the ring (config.records) */
	HTTP_K_RECORDS_LOST,	/* ... not written: the ring was full */
	HTTP_K_RECORDS_MISSING,	/* ... not written: the request's part was evicted */
	HTTP_K_BACKENDS_FULL,	/* connections of a backend the per-backend table had no room for */
	HTTP_COUNTERS,
};

/* Counting in the kernel. */
#define HTTP_FIFO 64		/* outstanding (pipelined) requests per connection */
#define HTTP_HEAD_MAX 2048	/* a message head must be whole in one segment and this long at most */
#define HTTP_MAX_BACKENDS 1024	/* per-backend slots at most (user space may set fewer) */
#define HTTP_MAX_STEPS 256	/* message heads, bodies and chunks parsed in one segment */
#define HTTP_LAT_SUB_BITS 5	/* latency histogram: 32 linear buckets per power of two ns */
#define HTTP_LAT_MAX_LOG 42	/* ... up to 2^43 ns (2.4 hours), the last bucket open */
#define HTTP_LAT_BUCKETS ((HTTP_LAT_MAX_LOG - HTTP_LAT_SUB_BITS + 2) << HTTP_LAT_SUB_BITS)

/* Per-transaction records (emit.h): fixed-size, strings cut to these lengths. */
#define HTTP_REC_METHOD 8
#define HTTP_REC_TARGET 128
#define HTTP_REC_HOST 64
#define HTTP_REC_TAG 64
#define HTTP_TAG_NAME_MAX 31	/* --tag-header's name, ':' after it in 32 bytes */

enum http_record_flag {
	HTTP_REC_TARGET_CUT = 1,	/* longer than HTTP_REC_TARGET */
	HTTP_REC_HOST_CUT = 2,
	HTTP_REC_TAG_CUT = 4,
	HTTP_REC_HAS_TAG = 8,		/* the tag header was in the request head */
	HTTP_REC_REQ_BODY_UNKNOWN = 16,	/* chunked request: its size is not kept */
	HTTP_REC_HAS_HOST = 32,
	HTTP_REC_NOT_FOLLOWED = 64,	/* the kernel lost track of its response */
};

/* One paired transaction, as a person reads it: written to the `records`
 * ring when its response ended. Times are CLOCK_MONOTONIC ns. */
struct http_record {
	__u64 req_ts;		/* the request head was seen */
	__u64 resp_ts;		/* the response head was seen */
	__u64 end_ts;		/* the response's last byte was seen */
	__u64 req_body;		/* body bytes (chunk framing not counted) */
	__u64 resp_body;
	__u8 client[16];	/* IPv4 in the first 4 bytes */
	__u8 server[16];
	__u8 outer_src[16];	/* the outermost tunnel's addresses (encap != 0) */
	__u8 outer_dst[16];
	__u32 isn;		/* the client's ISN: which connection of this 4-tuple */
	__u32 vni;
	__u16 cport;
	__u16 sport;
	__u16 status;
	__u16 target_len;
	__u8 family;		/* 4 or 6 */
	__u8 encap;		/* 0 none, 1 IPIP (or IPv6-in-IP), 2 VXLAN */
	__u8 outer_family;
	__u8 flags;		/* HTTP_REC_* */
	__u8 method_len;
	__u8 host_len;
	__u8 tag_len;
	__u8 pad;
	char method[HTTP_REC_METHOD];
	char target[HTTP_REC_TARGET];
	char host[HTTP_REC_HOST];
	char tag[HTTP_REC_TAG];
};

/* A request's part of its record (emit.h), as count.h's head scan finds it:
 * where, in the head, the fields shown lie (offsets from its start). */
struct http_fields {
	__u32 target_from;	/* after the method's space */
	__u32 first_eol;	/* the start line's end (before CR) */
	__u32 host_from;	/* Host's value: [host_from, host_eol), 0: none */
	__u32 host_eol;
	__u32 tag_from;		/* the tag header's value, 0: none */
	__u32 tag_eol;
	__u32 head;		/* where the head starts in the skb */
	__u32 flags;		/* HTTP_REC_* known so far */
	__u64 req_body;
};

/* The server side of a connection: where per-backend figures are kept. */
struct http_backend_key {
	__u8 addr[16];		/* IPv4 in the first 4 bytes */
	__u16 port;		/* host order */
	__u8 family;		/* 4 or 6 */
	__u8 pad;
};

/* Per-CPU, per backend; summed by user space. */
struct http_backend_stats {
	__u64 requests;		/* request heads */
	__u64 status[5];	/* final responses by class 1xx..5xx */
	__u64 no_response;	/* requests whose connection closed or reset unanswered */
	__u64 unpaired;		/* requests outstanding when the connection stopped being followed */
	__u64 connections;	/* followed from their SYN */
	__u64 lost_connections;	/* not followed from some point on, not handed off: a loss */
	__u64 midstream;	/* connections joined after their SYN (lost or handed off) */
	__u64 handed_off;	/* connections given whole to user space (config.hand_off) */
	__u64 request_body;	/* body bytes (chunk framing not counted) */
	__u64 response_body;
	__u64 latency_unknown;	/* responses whose end was not followed */
	__u64 latency_sum_ns;
	__u64 latency[HTTP_LAT_BUCKETS];	/* first request byte to last response byte */
	/* The last client of a new connection whose address is not the server's own:
	 * user space tells a front end (clients from elsewhere) from a backend by it. */
	__u8 client_sample[16];
	__u64 records_lost;	/* paired transactions whose record did not reach user space */
};

/* What the filter looks for, set before load (one const volatile global). */
struct http_config {
	__u16 ports[HTTP_MAX_PORTS];		/* TCP ports, host order; 0 = unused */
	__u32 n_ports;
	__u32 ifindexes[HTTP_MAX_IFINDEXES];	/* only these interfaces; n = 0: all */
	__u32 n_ifindexes;
	__u16 vxlan_ports[HTTP_MAX_VXLAN_PORTS];	/* UDP destination ports carrying VXLAN */
	__u32 n_vxlan_ports;
	__u32 keep_acks;			/* 1: keep payload-less ACKs too */
	__u32 count_in_kernel;			/* 1: count transactions in maps, keep no frame... */
	__u32 hand_off;				/* ...except those of connections not followed */
	__u32 records;				/* 1: a record per transaction to the ring (emit.h) */
	__u32 tag_len;				/* --tag-header: bytes of tag_name, 0: none */
	__u64 tag_name[(HTTP_TAG_NAME_MAX + 1) / 8];	/* its name in lower case, then ':' */
};

#endif /* NETBPF_HTTP_H */

/* SPDX-License-Identifier: GPL-2.0 */
/* netbpf http: counting HTTP/1.x transactions in the kernel.
 *
 * Included by http.bpf.c, which has found the TCP header. Each connection
 * (both directions under one key: client, then server) keeps, per direction,
 * the sequence number of the next byte to parse and what that byte is: a
 * message head, so many body bytes, a chunk-size line, chunk data, the end of
 * the trailers. A head must be whole in one segment, where it is scanned for
 * Content-Length and Transfer-Encoding; the body is then skipped by sequence
 * number, so bytes in a body are never taken for a message start. Requests
 * wait in a FIFO (pipelining) for their responses, which pop them in order.
 *
 * Anything the kernel cannot follow with certainty (a gap or reordering, a
 * head split over segments, a body length it cannot tell, a connection
 * joined after its SYN) stops the following of that connection: what is
 * outstanding is counted as unpaired, the connection as lost, and with
 * config.hand_off its frames from then on go to user space, which counts them
 * itself. Nothing is counted twice: a byte is parsed only where it is the next
 * one of its direction, and a lost connection is never parsed again.
 *
 * Both directions of a connection may be parsed on two CPUs at once; they
 * share only the FIFO, written by the client side (tail) and read by the
 * server side (head). A response is sent after its request reached the server,
 * and the filter runs on a request before it leaves, so a pop never overtakes
 * its push. Where the following of a connection ends (lost or closed), either
 * side may see it first: `ended` is taken by one compare-and-swap, and only
 * the CPU that took it counts and emits what was outstanding (end_conn).
 */
#ifndef NETBPF_HTTP_COUNT_H
#define NETBPF_HTTP_COUNT_H

#define HEAD_MASK (HTTP_HEAD_MAX - 1)

/* Leave the innermost loop when the verifier's budget of iterations is spent:
 * the may_goto instruction (Linux 6.9), written out for a compiler that does
 * not know it (as the kernel's selftests do). A loop bounded so is checked by
 * the verifier until its state converges, and runs without a call per step,
 * unlike bpf_loop(): a step's call costs ~25 ns here (measured: a return goes
 * through the CPU's return thunk, AMD's Safe RET on this machine). */
#define cond_break							\
	({								\
		__label__ l_break, l_continue;				\
		asm volatile goto("1:.byte 0xe5;			\
			      .byte 0;					\
			      .long ((%l[l_break] - 1b - 8) / 8) & 0xffff; \
			      .short 0"					\
			      :::: l_break);				\
		goto l_continue;					\
	l_break: break;							\
	l_continue:;							\
	})
/* Kernels before 6.9 refuse that instruction: http_bpf_loop.bpf.c builds this
 * file with HTTP_BPF_LOOP, the head scan one bpf_loop() step per line, and the
 * loader picks it where the probe for may_goto fails (features.has_may_goto). */
#define CHUNK_LINE_MAX 32	/* a chunk-size line (hex size, extensions, CRLF) */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

enum dir_state {
	DIR_UNSYNCED = 0,	/* no SYN of this direction seen */
	DIR_HEAD,		/* next byte starts a message */
	DIR_BODY,		/* `left` body bytes to come */
	DIR_CHUNK_SIZE,		/* next byte starts a chunk-size line */
	DIR_CHUNK_DATA,		/* `left` bytes of chunk data and its CRLF */
	DIR_TRAILER,		/* after the last chunk: CRLF ends the message */
	DIR_UNTIL_CLOSE,	/* a response body that ends with the connection */
	DIR_TUNNEL,		/* after 101 or CONNECT 2xx: not HTTP any more */
};

struct http_dir {
	__u32 next_seq;		/* sequence number of the next byte to parse */
	__u32 isn;
	__u8 state;
	__u8 chunk_digits;	/* a chunk-size line cut by the segment's end: */
	__u8 chunk_ext;		/* its digits so far (value in `left`), in extensions */
	__u8 island;		/* body bytes seen ahead of next_seq: */
	__u8 pad[4];
	__u32 island_start;	/* [island_start, island_end) */
	__u32 island_end;
	__u64 left;		/* body / chunk bytes to come; CR seen in DIR_TRAILER */
};

/* Why a connection stopped being followed (http_conn.ended). */
enum conn_end {
	CONN_FOLLOWED = 0,
	CONN_LOST,		/* from some point on: a gap, a head split, joined late... */
	CONN_CLOSED,		/* server FIN, or RST either way */
};

struct http_conn_key {
	__u8 client[16];
	__u8 server[16];
	__u16 cport;
	__u16 sport;
	__u8 family;
	__u8 pad[3];
};

struct http_conn {
	/* What every segment reads comes first: two cache lines, not the FIFO's. */
	__u32 ended;			/* enum conn_end: set once, by end_conn() */
	__u8 handed;			/* lost, and its frames go to user space */
	__u8 resp_open;			/* a final response is being received */
	__u8 pad[2];
	__u32 backend;			/* its server's slot in `backends`; 0: none */
	__u32 fifo_head;		/* popped by responses (server side) */
	__u32 fifo_tail;		/* pushed by requests (client side) */
	__u64 head_mask;		/* bit of a FIFO slot: that request is HEAD */
	__u64 connect_mask;		/* ... is CONNECT */
	__u64 resp_req_ts;		/* the request of the response being received */
	struct http_dir dir[2];		/* 0: client to server, 1: server to client */
	__u64 resp_ts;			/* emit.h: the response being received, for its record */
	__u64 resp_body;
	__u64 req_body;			/* ... and the last request's body so far */
	__u32 resp_index;
	__u32 resp_status;
	__u64 req_ts[HTTP_FIFO];	/* when each outstanding request's head was seen */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct http_conn_key);
	__type(value, struct http_conn);
} connections SEC(".maps");

/* Per-backend figures: a per-CPU array, whose lookup the verifier inlines (a
 * per-CPU hash lookup was ~70 ns of every segment). Each backend gets a slot
 * the first time one of its connections is seen, through `backend_index`
 * (looked up once per connection, not per segment: the connection keeps its
 * slot). Slots are preallocated, ~10 KB per CPU each: user space sizes the
 * array for the machine's CPUs (kernel.py); a backend beyond it is counted in
 * HTTP_K_BACKENDS_FULL, its requests in the totals only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HTTP_MAX_BACKENDS);
	__type(key, struct http_backend_key);
	__type(value, __u32);
} backend_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HTTP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct http_backend_stats);
} backends SEC(".maps");

/* Slots of `backends` given so far (1, 2, ...; 0 is never given); never given back. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} backend_next SEC(".maps");

/* Zeroed values to insert from (too large for the BPF stack); never written. */
struct zeroes {
	struct http_conn conn;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zeroes);
} zero SEC(".maps");

enum head_verdict { HEAD_OK, HEAD_NOT_HTTP, HEAD_SPLIT, HEAD_LONG, HEAD_HTTP2, HEAD_TLS, HEAD_ERROR };

/* In: where a head starts and how many bytes the segment has from there.
 * Out: the verdict and what the head says about the message. */
struct head_result {
	__u32 pos;
	__u32 avail;
	__u32 request;
	__u32 verdict;
	__u32 method;
	__u32 status;
	__u32 end;		/* bytes of the head */
	__u32 has_length;
	__u64 length;
	__u32 chunked;
	__u32 other_coding;
};

struct chunk_line {
	__u8 line[CHUNK_LINE_MAX];
	__u32 pos;
	__u32 n;
	__u32 digits;
	__u64 size;
	__u32 eol;		/* bytes of the line, LF included; 0: not found */
	__u8 in_ext;
	__u8 bad;
};

struct scratch {
	__u8 buf[HTTP_HEAD_MAX + 32];	/* 8-byte reads from any masked offset stay inside */
	struct http_fields fields;	/* emit.h: what a record shows of the head in buf */
	struct head_result head;	/* parse_head's and parse_chunk_size's, here: the */
	struct chunk_line chunk;	/* walk's stack is at the 512-byte limit */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

NETBPF_BTF_EXPORT(http_backend_key);
NETBPF_BTF_EXPORT(http_backend_stats);

/* The slot of the connection's server in `backends` (0: no room; slot 0 is
 * never given), given when the first connection to it is seen. Global, called once per
 * connection: its stack is not on top of the parser's (512 bytes in all). */
__noinline __u32 backend_slot(const struct http_conn_key *key)
{
	struct http_backend_key bk = {};
	__u32 *idx, *next, slot, k0 = 0;

	if (!key)
		return 0;
	__builtin_memcpy(bk.addr, key->server, 16);
	bk.port = key->sport;
	bk.family = key->family;
	idx = bpf_map_lookup_elem(&backend_index, &bk);
	if (idx)
		return *idx;
	next = bpf_map_lookup_elem(&backend_next, &k0);
	if (!next)
		return 0;
	slot = *next + 1;
	/* The array's own bound (set by user space) says whether a slot is left;
	 * tested before taking one, so that `next` never runs far past it. */
	if (!bpf_map_lookup_elem(&backends, &slot))
		goto full;
	slot = __sync_fetch_and_add(next, 1) + 1;
	if (!bpf_map_lookup_elem(&backends, &slot))
		goto full;
	if (!bpf_map_update_elem(&backend_index, &bk, &slot, BPF_NOEXIST))
		return slot;
	/* Another CPU gave this backend a slot at the same time (this one stays unused). */
	idx = bpf_map_lookup_elem(&backend_index, &bk);
	if (idx)
		return *idx;
full:
	netbpf_inc(counters, HTTP_K_BACKENDS_FULL);
	return 0;
}

/* The connection's backend figures. The key is the connection's own field
 * (a map value can be a key): no stack slot, the parser's is at the 512-byte limit. */
static __always_inline struct http_backend_stats *backend_of(struct http_conn *c)
{
	return c->backend ? bpf_map_lookup_elem(&backends, &c->backend) : 0;
}

#include "emit.h"	/* per-transaction records: after the maps it uses */

/* Lower case for comparing with a lower-case letter; branch-free, as every
 * branch here multiplies the paths the verifier walks. */
static __always_inline __u8 lower(__u8 c)
{
	return c | 0x20;
}

/* Bucket of a latency in ns: exact below 2^SUB_BITS, then 2^SUB_BITS linear
 * buckets per power of two (relative width <= 1/32), the last one open. */
static __always_inline __u32 latency_bucket(__u64 ns)
{
	__u32 log = 0;
	__u64 v = ns;

	if (v < (1ULL << HTTP_LAT_SUB_BITS))
		return v;
	if (v >> 32) { v >>= 32; log += 32; }
	if (v >> 16) { v >>= 16; log += 16; }
	if (v >> 8) { v >>= 8; log += 8; }
	if (v >> 4) { v >>= 4; log += 4; }
	if (v >> 2) { v >>= 2; log += 2; }
	if (v >> 1) { log += 1; }
	if (log > HTTP_LAT_MAX_LOG)
		return HTTP_LAT_BUCKETS - 1;
	return ((log - HTTP_LAT_SUB_BITS + 1) << HTTP_LAT_SUB_BITS) +
	       ((ns >> (log - HTTP_LAT_SUB_BITS)) & ((1 << HTTP_LAT_SUB_BITS) - 1));
}

/* Remember a client of this server that is not the server's own address (per CPU). */
static __always_inline void sample_client(struct http_backend_stats *st, const struct http_conn_key *key)
{
	__u64 c[2], v[2];

	if (!st)
		return;
	__builtin_memcpy(c, key->client, 16);
	__builtin_memcpy(v, key->server, 16);
	if (c[0] == v[0] && c[1] == v[1])
		return;
	__builtin_memcpy(st->client_sample, key->client, 16);
}

/* 1 for the one caller that ends the following of the connection (how:
 * CONN_LOST or CONN_CLOSED), 0 for any other, on any CPU, before or at once:
 * what was outstanding is counted, and its lines emitted, once. */
static __always_inline int end_conn(struct http_conn *c, __u32 how)
{
	return !c->ended && __sync_val_compare_and_swap(&c->ended, CONN_FOLLOWED, how) == CONN_FOLLOWED;
}

/* The connection is not followed from here on. */
static __always_inline void lose(struct http_conn *c, struct http_backend_stats *st, enum http_counter why)
{
	if (!end_conn(c, CONN_LOST))
		return;
	netbpf_inc(counters, why);
	/* HTTP/1.x as far as we know: user space takes it from here. Nothing of
	 * it counted yet: the whole of it. Counted in part: from the first frame
	 * none of whose bytes the kernel parsed (http_count_segment); user space
	 * joins it mid-stream, pairing only what it can prove, and what the kernel
	 * counted without its response stays unpaired below. */
	if (config.hand_off && why != HTTP_K_LOST_NOT_HTTP) {
		c->handed = 1;
		if (st)
			st->handed_off++;
		if (!c->fifo_tail)
			return;
	}
	if (!st)
		return;
	st->lost_connections++;
	st->unpaired += c->fifo_tail - c->fifo_head;
	if (c->resp_open)
		st->latency_unknown++;
	if (config.records && c->resp_open)	/* emit.h: its line too, from the connection's next frame */
		__sync_fetch_and_add(&c->fifo_head, -1);	/* the server side may be popping */
	c->resp_open = 0;
}

/* A response's last byte was just seen: its latency, into the backend's
 * histogram. The clock is read here and at a request head only, where a
 * time is kept: not for a segment inside a body (a read is ~40 ns here). */
static __always_inline void response_done(struct http_conn *c, struct http_conn_key *key,
					  struct http_backend_stats *st)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 ns = now - c->resp_req_ts;
	__u32 b;

	c->resp_open = 0;
	if (st) {
		b = latency_bucket(ns);
		st->latency_sum_ns += ns;
		if (b < HTTP_LAT_BUCKETS)
			st->latency[b]++;
	}
	if (config.records)
		http_rec_emit(key, c, now, c->resp_index, c->resp_status);	/* emit.h: its line */
}

/* Closed (server FIN, or RST either way): what is outstanding gets no response. */
static __always_inline void close_conn(struct http_conn *c, struct http_conn_key *key,
				       struct http_backend_stats *st)
{
	__u32 head, tail;

	if (!end_conn(c, CONN_CLOSED))
		return;
	if (c->resp_open) {
		if (c->dir[1].state == DIR_UNTIL_CLOSE)
			response_done(c, key, st);
		else if (st)
			st->latency_unknown++;
		if (c->dir[1].state != DIR_UNTIL_CLOSE && config.records)	/* its line, its end unknown */
			http_rec_emit(key, c, 0, c->resp_index, c->resp_status);
		c->resp_open = 0;
	}
	head = c->fifo_head;
	tail = c->fifo_tail;
	if (st)
		st->no_response += tail - head;
	if (config.records && tail != head)
		http_rec_unanswered(key, c, head, tail);	/* emit.h: a line for each */
	c->fifo_head = tail;
}

/* -- scanning a head in the scratch buffer ------------------------------------ */
struct head_scan {
	__u8 *buf;
	__u32 n;		/* bytes in buf */
	__u32 pos;		/* where the search for the next LF goes on */
	__u32 line;		/* where the current line starts */
	__u32 end;		/* bytes of the head, 0 until its empty line is found */
	__u32 first_eol;	/* end of the start line */
	__u32 cl_from;		/* Content-Length's value: [cl_from, cl_eol), 0: none */
	__u32 cl_eol;
	__u32 te_from;		/* Transfer-Encoding's value: [te_from, te_eol), 0: none */
	__u32 te_eol;
	__u8 chunked;		/* Transfer-Encoding whose last coding is chunked */
	__u8 other_coding;	/* Transfer-Encoding otherwise, or several of them */
	__u8 bad;		/* several Content-Length, a bad start line or length */
	__u8 request;
};

#define AT(s, i) ((s)->buf[(i) & HEAD_MASK])

/* Eight bytes at i (masked), as a little-endian word. */
static __always_inline __u64 word_at(struct head_scan *s, __u32 i)
{
	return *(__u64 *)(s->buf + (i & HEAD_MASK));
}

/* Little-endian words of 8 characters, for one comparison instead of eight. */
#define W8(a, b, c, d, e, f, g, h)						\
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 |	\
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)
#define LOWER8 0x2020202020202020ULL	/* case folding: letters, '-', ':' and ' ' keep */

/* After the first word ("content-", "transfer" case-folded), checked by the caller. */
static __always_inline int is_content_length(struct head_scan *s, __u32 i)
{
	return (word_at(s, i + 7) | LOWER8) == W8('-', 'l', 'e', 'n', 'g', 't', 'h', ':');
}

static __always_inline int is_transfer_encoding(struct head_scan *s, __u32 i)
{
	return (word_at(s, i + 8) | LOWER8) == W8('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') &&
	       (word_at(s, i + 10) | LOWER8) == W8('n', 'c', 'o', 'd', 'i', 'n', 'g', ':');
}

/* The last coding decides: "chunked" at the end of the value (one blank after
 * it at most), alone or after a blank or a comma. */
static __always_inline void transfer_encoding(struct head_scan *s, __u32 at, __u32 eol)
{
	__u32 e = eol > at && (AT(s, eol - 1) == ' ' || AT(s, eol - 1) == '\t') ? eol - 1 : eol;
	__u64 w;

	if (e < at + 7) {
		s->other_coding = 1;
		return;
	}
	w = word_at(s, e - 8) | LOWER8;
	if ((w >> 8) == (W8('c', 'h', 'u', 'n', 'k', 'e', 'd', 0) & 0xffffffffffffffULL) &&
	    (e == at + 7 || AT(s, e - 8) == ' ' || AT(s, e - 8) == ',' || AT(s, e - 8) == '\t'))
		s->chunked = 1;
	else
		s->other_coding = 1;
}

/* The request line ends in " HTTP/1.x". */
static __always_inline int http1_version_at_end(struct head_scan *s, __u32 eol)
{
	__u64 w = word_at(s, eol - 9);

	return eol >= 9 && w == W8(' ', 'H', 'T', 'T', 'P', '/', '1', '.') &&
	       AT(s, eol - 1) >= '0' && AT(s, eol - 1) <= '9';
}

#define LF8 0x0a0a0a0a0a0a0a0aULL
#define ONES8 0x0101010101010101ULL
#define HIGHS8 0x8080808080808080ULL

/* One step of the head scan (a cond_break loop in http_scan_head): on to the
 * next LF, eight bytes a word where there is none (a zero-byte test on the
 * word XOR LFs), one line per step where there is. A line is looked at on its
 * LF: the empty one ends the head; the names
 * Content-Length and Transfer-Encoding are noted with where their values are,
 * which are read once the head is whole. */
static __always_inline long scan_line(struct head_scan *s)
{
	__u32 pos = s->pos, line, eol, i;
	__u64 x, m, first;

	if (pos >= s->n)
		return 1;
	/* Up to six words per step: most header lines are 16 to 48 bytes. */
	x = word_at(s, pos) ^ LF8;
	m = (x - ONES8) & ~x & HIGHS8;	/* exact for the lowest LF */
#pragma unroll
	for (int j = 0; j < 5; j++) {
		if (m)
			break;
		pos += 8;
		x = word_at(s, pos) ^ LF8;
		m = (x - ONES8) & ~x & HIGHS8;
	}
	if (!m) {
		s->pos = pos + 8;
		return 0;
	}
	/* Index of the lowest marked byte: its bit, times bytes 7..0, top byte. */
	i = pos + (__u32)((((m & -m) >> 7) * 0x0001020304050607ULL) >> 56);
	if (i >= s->n)
		return 1;
	s->pos = i + 1;
	line = s->line;
	s->line = i + 1;
	eol = i > line && AT(s, i - 1) == '\r' ? i - 1 : i;
	if (line == 0) {
		s->first_eol = eol;
		return 0;
	}
	if (eol == line) {
		s->end = i + 1;
		return 1;
	}
	/* One word of the name tells both apart (and most other lines from them). */
	first = word_at(s, line) | LOWER8;
	if (first == W8('c', 'o', 'n', 't', 'e', 'n', 't', '-') && is_content_length(s, line)) {
		if (s->cl_from)
			s->bad = 1;	/* several (even equal) Content-Length: not followed */
		s->cl_from = line + 15;
		s->cl_eol = eol;
	} else if (first == W8('t', 'r', 'a', 'n', 's', 'f', 'e', 'r') && is_transfer_encoding(s, line)) {
		if (s->te_from)
			s->other_coding = 1;
		s->te_from = line + 18;
		s->te_eol = eol;
	} else if (config.records) {
		http_line_field((struct scratch *)s->buf, line, eol);	/* emit.h: Host, tag */
	}
	return 0;
}

#ifdef HTTP_BPF_LOOP
/* bpf_loop callback: one step of the scan (kernels without may_goto). */
static long scan_line_step(__u32 k, struct head_scan *s)
{
	return scan_line(s);
}
#endif

/* Content-Length's value, one byte per bpf_loop step (after the scan, not
 * inside it: a loop in a loop's callback multiplies the verifier's work; a
 * bounded loop here, cheaper to run, doubled the verifier's work for the
 * whole program, to 0.9 of its limit). */
struct number {
	struct head_scan *s;
	__u64 value;
	__u32 digits;
	__u8 done;		/* blanks after the digits */
	__u8 bad;
};

static long number_byte(__u32 k, struct number *nb)
{
	struct head_scan *s = nb->s;
	__u32 i = s->cl_from + k;
	__u8 ch;

	if (i >= s->cl_eol)
		return 1;
	ch = AT(s, i);
	if (ch >= '0' && ch <= '9' && !nb->done) {
		nb->value = nb->value * 10 + (ch - '0');
		nb->digits++;
		return 0;
	}
	if (ch == ' ' || ch == '\t') {
		if (nb->digits)
			nb->done = 1;
		return 0;
	}
	nb->bad = 1;
	return 1;
}

/* The common Content-Length, 1 to 8 digits after at most one blank and
 * nothing after them, in a few word operations: each bpf_loop step is a call,
 * ~25 ns here (a return goes through the CPU's return thunk), and a value of
 * one digit took two. 1: done (value, digits set); 0: anything else, which
 * number_byte() reads byte by byte. */
static __always_inline int short_length(struct head_scan *s, struct number *nb)
{
	__u32 from = s->cl_from + (AT(s, s->cl_from) == ' '), len = s->cl_eol - from, shift;
	__u64 x;

	if (s->cl_eol < from || len < 1 || len > 8)
		return 0;
	/* The digits at the word's top end, '0's below them (leading zeroes). */
	shift = (8 - len) * 8;
	x = word_at(s, from) << shift;
	if (shift)
		x |= 0x3030303030303030ULL >> (64 - shift);
	if ((x & 0xf0f0f0f0f0f0f0f0ULL) != 0x3030303030303030ULL ||
	    ((x + 0x0606060606060606ULL) & 0xf0f0f0f0f0f0f0f0ULL) != 0x3030303030303030ULL)
		return 0;
	/* Eight digits, the first in the lowest byte, to their value (as simdjson does). */
	x = ((x & 0x0f0f0f0f0f0f0f0fULL) * 2561) >> 8;
	x = ((x & 0x00ff00ff00ff00ffULL) * 6553601) >> 16;
	nb->value = ((x & 0x0000ffff0000ffffULL) * 42949672960001ULL) >> 32;
	nb->digits = len;
	return 1;
}

/* -- the parser's walk through one segment ------------------------------------ */
struct walk {
	struct __sk_buff *skb;
	struct http_conn *c;
	struct http_backend_stats *st;
	struct http_conn_key *key;
	__u32 pos;		/* offset in the skb */
	__u32 end;
	__u8 side;		/* 0: client to server */
	__u8 stop;
};

enum method { M_OTHER, M_HEAD, M_CONNECT };

/* A known method and a space at the start of buf: its length, or 0. */
static __always_inline int method(const __u8 *b, enum method *m)
{
	*m = M_OTHER;
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ')
		return 4;
	if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ') {
		*m = M_HEAD;
		return 4;
	}
	if (b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' && b[5] == ' ')
		return 5;
	if (b[0] == 'T' && b[1] == 'R' && b[2] == 'A' && b[3] == 'C' && b[4] == 'E' && b[5] == ' ')
		return 5;
	if (b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' && b[5] == 'E' &&
	    b[6] == ' ')
		return 6;
	if (b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' && b[5] == 'N' &&
	    b[6] == 'S' && b[7] == ' ')
		return 7;
	if (b[0] == 'C' && b[1] == 'O' && b[2] == 'N' && b[3] == 'N' && b[4] == 'E' && b[5] == 'C' &&
	    b[6] == 'T' && b[7] == ' ') {
		*m = M_CONNECT;
		return 7;
	}
	return 0;
}

/* A message head at r->pos: a global function, verified once on its own
 * (its byte loop inside the parser's step loop would multiply the work). */
__noinline int http_scan_head(struct __sk_buff *skb, struct head_result *r)
{
	struct head_scan s = {};
	struct scratch *sc;
	__u32 n, k0 = 0;
	enum method m = M_OTHER;
	__u8 *b;

	if (!r)
		return 0;
	r->verdict = HEAD_ERROR;
	n = r->avail;
	sc = bpf_map_lookup_elem(&scratch, &k0);
	if (!sc)
		return 0;
	if (n > HTTP_HEAD_MAX)
		n = HTTP_HEAD_MAX;
#if defined(HTTP_CUT) && HTTP_CUT == 10
	r->verdict = HEAD_OK;	/* profiling: as if a head without a body, not even copied */
	r->end = r->avail;
	r->status = 200;
	r->has_length = 1;
	return !skb->len;
#endif
	if (n < 1 || bpf_skb_load_bytes(skb, r->pos, sc->buf, n))
		return 0;
	if (n < 16) {
		/* Too short for any start line we know; zeroes make the checks fail. */
		__builtin_memset(sc->buf + n, 0, 16);
	}
#if defined(HTTP_CUT) && HTTP_CUT == 8
	r->verdict = HEAD_OK;	/* profiling: as if a head without a body */
	r->end = r->avail;
	r->status = 200;
	r->has_length = 1;	/* and Content-Length: 0 */
	return 0;
#endif
	b = sc->buf;
	s.buf = b;
	s.n = n;
	s.request = r->request;
	if (config.records) {
		sc->fields.head = r->pos;
		sc->fields.host_from = 0;
		sc->fields.tag_from = 0;
	}
	if (r->request) {
		__u32 len = method(b, &m);

		if (config.records)
			sc->fields.target_from = len + 1;	/* emit.h */
		if (!len) {
			if (b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ')
				r->verdict = HEAD_HTTP2;
			else if (b[0] == 0x16 && b[1] == 3)
				r->verdict = HEAD_TLS;
			else
				r->verdict = r->avail < 16 ? HEAD_SPLIT : HEAD_NOT_HTTP;
			return 0;
		}
		r->method = m;
	} else {
		if (!(b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P' && b[4] == '/' &&
		      b[5] == '1' && b[6] == '.' && b[7] >= '0' && b[7] <= '9' && b[8] == ' ' &&
		      b[9] >= '1' && b[9] <= '5' && b[10] >= '0' && b[10] <= '9' && b[11] >= '0' &&
		      b[11] <= '9' && (b[12] == ' ' || b[12] == '\r' || b[12] == '\n'))) {
			r->verdict = r->avail < 16 ? HEAD_SPLIT : HEAD_NOT_HTTP;
			return 0;
		}
		r->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	}
	/* Ends at the empty line or at the segment's end (a step advances or
	 * ends); were the verifier's budget ever spent first, s.end would stay 0:
	 * a head not followed, and counted so, never a wrong one. */
#ifdef HTTP_BPF_LOOP
	bpf_loop(n, scan_line_step, &s, 0);
#else
	while (1) {
		cond_break;
		if (scan_line(&s))
			break;
	}
#endif
	if (s.end && s.request && !http1_version_at_end(&s, s.first_eol))
		s.bad = 1;
	if (s.end && s.te_from && !s.other_coding)
		transfer_encoding(&s, s.te_from, s.te_eol);
	if (s.end && s.cl_from && !s.bad) {
		struct number nb = { .s = &s };

		if (s.cl_eol > s.cl_from + 24)
			s.bad = 1;
		else if (!short_length(&s, &nb))
			bpf_loop(24, number_byte, &nb, 0);
		if (nb.bad || !nb.digits || nb.digits > 18)
			s.bad = 1;
		r->has_length = 1;
		r->length = nb.value;
	}
	if (s.bad) {
		r->verdict = HEAD_NOT_HTTP;
		return 0;
	}
	if (!s.end) {
		r->verdict = r->avail > HTTP_HEAD_MAX ? HEAD_LONG : HEAD_SPLIT;
		return 0;
	}
	r->verdict = HEAD_OK;
	r->end = s.end;
	r->chunked = s.chunked;
	r->other_coding = s.other_coding;
	if (config.records) {
		sc->fields.first_eol = s.first_eol;
		sc->fields.req_body = s.chunked ? 0 : r->length;
		sc->fields.flags = s.chunked ? HTTP_REC_REQ_BODY_UNKNOWN : 0;
	}
	return 0;
}

/* A message head at w->pos. */
static __always_inline void parse_head(struct walk *w, struct http_dir *d)
{
	struct http_conn *c = w->c;
	struct http_backend_stats *st = w->st;
	struct head_result *s;
	struct scratch *sc;
	enum method m;
	__u32 status, k0 = 0;
	__u64 now;

	sc = bpf_map_lookup_elem(&scratch, &k0);
	if (!sc)
		goto lost_len;
	s = &sc->head;
	__builtin_memset(s, 0, sizeof(*s));
	s->pos = w->pos;
	s->avail = w->end - w->pos;
	s->request = w->side == 0;
	http_scan_head(w->skb, s);
#if defined(HTTP_CUT) && HTTP_CUT == 9
	/* Profiling: the head read whole (its lines, Content-Length), then taken
	 * for a head without a body. A cut inside the scan's loop would not
	 * verify: the verifier follows it until its state converges. */
	s->verdict = HEAD_OK;
	s->end = s->avail;
	s->has_length = 1;
	s->length = 0;
	s->chunked = 0;
#endif
	switch (s->verdict) {
	case HEAD_OK:
		break;
	case HEAD_SPLIT:
		lose(c, st, HTTP_K_LOST_HEAD_SPLIT);
		w->stop = 1;
		return;
	case HEAD_LONG:
		lose(c, st, HTTP_K_LOST_HEAD_LONG);
		w->stop = 1;
		return;
	case HEAD_HTTP2:
		goto http2;
	case HEAD_TLS:
		goto tls;
	case HEAD_NOT_HTTP:
		goto not_http;
	default:
		goto lost_len;
	}
	m = s->method;
	status = s->status;
	w->pos += s->end;

	if (w->side == 0) {
		__u32 slot = c->fifo_tail % HTTP_FIFO;
		__u64 bit = 1ULL << slot;

		if (s->other_coding)
			goto lost_len;	/* a request body whose length cannot be told: 400 */
		if (c->fifo_tail - c->fifo_head >= HTTP_FIFO) {
			lose(c, st, HTTP_K_LOST_PIPELINE);
			w->stop = 1;
			return;
		}
		now = bpf_ktime_get_ns();
		if (config.records) {
			c->req_body = 0;
			http_rec_request(w->skb, w->key, now, c->fifo_tail, c->dir[0].isn);
		}
		c->req_ts[slot] = now;
		c->head_mask = m == M_HEAD ? c->head_mask | bit : c->head_mask & ~bit;
		c->connect_mask = m == M_CONNECT ? c->connect_mask | bit : c->connect_mask & ~bit;
		c->fifo_tail++;
		netbpf_inc(counters, HTTP_K_REQUESTS);
		if (st)
			st->requests++;
		if (s->chunked) {
			d->state = DIR_CHUNK_SIZE;
		} else if (s->has_length && s->length) {
			d->state = DIR_BODY;
			d->left = s->length;
		}
		return;
	}

	/* A response: 1xx other than 101 are interim, the request still waits. */
	if (status / 100 == 1 && status != 101) {
		netbpf_inc(counters, HTTP_K_INTERIM);
		return;
	}
	if (c->fifo_head == c->fifo_tail) {
		/* Nothing to pair with: not a transaction; HEAD cannot be ruled out. */
		netbpf_inc(counters, HTTP_K_ORPHANS);
		goto lost_len;
	}
	{
		__u32 slot = c->fifo_head % HTTP_FIFO;
		__u64 bit = 1ULL << slot;
		int no_body = (c->head_mask & bit) || status == 204 || status == 304;
		int tunnel = status == 101 || ((c->connect_mask & bit) && status / 100 == 2);

		c->resp_req_ts = c->req_ts[slot];
		if (config.records)
			http_rec_pair(c, status, bpf_ktime_get_ns());
		c->fifo_head++;
		c->resp_open = 1;
		netbpf_inc(counters, HTTP_K_RESPONSES);
		if (st) {
			__u32 cls = status / 100 - 1;

			if (cls < 5)
				st->status[cls]++;
		}
		if (tunnel) {
			response_done(c, w->key, w->st);
			netbpf_inc(counters, HTTP_K_TUNNELS);
			c->dir[0].state = DIR_TUNNEL;
			d->state = DIR_TUNNEL;
			w->stop = 1;
			return;
		}
		if (no_body) {
			response_done(c, w->key, w->st);
			return;
		}
		if (s->chunked) {
			d->state = DIR_CHUNK_SIZE;
		} else if (s->other_coding || !s->has_length) {
			d->state = DIR_UNTIL_CLOSE;
		} else if (s->length) {
			d->state = DIR_BODY;
			d->left = s->length;
		} else {
			response_done(c, w->key, w->st);
		}
		return;
	}

not_http:
	lose(c, st, HTTP_K_LOST_NOT_HTTP);
	w->stop = 1;
	return;
http2:
	if (c->fifo_tail == 0)
		netbpf_inc(counters, HTTP_K_HTTP2);
	goto not_http;
tls:
	if (c->fifo_tail == 0)
		netbpf_inc(counters, HTTP_K_TLS);
	goto not_http;
lost_len:
	lose(c, st, HTTP_K_LOST_LENGTH);
	w->stop = 1;
}

static long chunk_byte(__u32 k, struct chunk_line *cl)
{
	__u8 ch, lc;

	if (k >= cl->n)
		return 1;
	ch = cl->line[k & (CHUNK_LINE_MAX - 1)];
	lc = lower(ch);
	if (ch == '\n') {
		cl->eol = k + 1;
		return 1;
	}
	if (cl->in_ext || ch == '\r')
		return 0;
	if (ch == ';' || ch == ' ' || ch == '\t') {
		cl->in_ext = 1;
		return 0;
	}
	if (cl->digits < 15 && ((ch >= '0' && ch <= '9') || (lc >= 'a' && lc <= 'f'))) {
		cl->size = cl->size * 16 + (ch <= '9' ? ch - '0' : lc - 'a' + 10);
		cl->digits++;
		return 0;
	}
	cl->bad = 1;
	return 1;
}

/* A chunk-size line at cl->pos (in) of cl->n bytes at most: hex digits,
 * maybe ";extensions", CRLF. Global, verified once (see http_scan_head). */
__noinline int http_chunk_line(struct __sk_buff *skb, struct chunk_line *out)
{
	struct chunk_line cl = {};	/* bpf_loop's context must be on this stack */
	__u32 n;

	if (!out)
		return 0;
	cl.size = out->size;		/* a line cut by the previous segment goes on */
	cl.digits = out->digits;
	cl.in_ext = out->in_ext;
	n = out->n;
	if (n > CHUNK_LINE_MAX)
		n = CHUNK_LINE_MAX;
	if (n < 1 || bpf_skb_load_bytes(skb, out->pos, cl.line, n)) {
		out->bad = 1;
		return 0;
	}
	cl.n = n;
	bpf_loop(CHUNK_LINE_MAX, chunk_byte, &cl, 0);
	out->eol = cl.eol;
	out->digits = cl.digits;
	out->size = cl.size;
	out->in_ext = cl.in_ext;
	out->bad = cl.bad;
	return 0;
}

static __always_inline void parse_chunk_size(struct walk *w, struct http_dir *d)
{
	struct chunk_line *cl;
	struct scratch *sc;
	__u32 k0 = 0;

	sc = bpf_map_lookup_elem(&scratch, &k0);
	if (!sc) {
		lose(w->c, w->st, HTTP_K_LOST_CHUNK);
		w->stop = 1;
		return;
	}
	cl = &sc->chunk;
	__builtin_memset(cl, 0, sizeof(*cl));
	cl->pos = w->pos;
	cl->n = w->end - w->pos;
	cl->digits = d->chunk_digits;
	cl->in_ext = d->chunk_ext;
	cl->size = d->chunk_digits ? d->left : 0;
	http_chunk_line(w->skb, cl);
	if (!cl->bad && !cl->eol && w->end - w->pos <= CHUNK_LINE_MAX) {
		/* The segment ends inside the line: the next one goes on with it. */
		d->left = cl->size;
		d->chunk_digits = cl->digits;
		d->chunk_ext = cl->in_ext;
		w->pos = w->end;
		return;
	}
	if (cl->bad || !cl->eol || !cl->digits) {
		lose(w->c, w->st, HTTP_K_LOST_CHUNK);
		w->stop = 1;
		return;
	}
	w->pos += cl->eol;
	d->chunk_digits = 0;
	d->chunk_ext = 0;
	if (cl->size) {
		d->state = DIR_CHUNK_DATA;
		d->left = cl->size + 2;
	} else {
		d->state = DIR_TRAILER;
		d->left = 0;
	}
}

/* After the last chunk: the CRLF that ends the message (trailers are not followed). */
static __always_inline void parse_trailer(struct walk *w, struct http_dir *d)
{
	__u8 crlf[2] = {};
	__u32 avail = w->end - w->pos;

	if (d->left) {
		/* CR seen at the end of the previous segment. */
		if (bpf_skb_load_bytes(w->skb, w->pos, crlf, 1) || crlf[0] != '\n')
			goto lost;
		w->pos += 1;
	} else if (avail == 1) {
		if (bpf_skb_load_bytes(w->skb, w->pos, crlf, 1) || crlf[0] != '\r')
			goto lost;
		d->left = 1;
		w->pos += 1;
		return;
	} else {
		if (bpf_skb_load_bytes(w->skb, w->pos, crlf, 2) || crlf[0] != '\r' || crlf[1] != '\n')
			goto lost;
		w->pos += 2;
	}
	d->state = DIR_HEAD;
	d->left = 0;
	if (w->side == 1)
		response_done(w->c, w->key, w->st);
	return;
lost:
	/* Trailer fields (rare) are not followed. */
	lose(w->c, w->st, HTTP_K_LOST_CHUNK);
	w->stop = 1;
}

static __always_inline void body_bytes(struct walk *w, __u64 n)
{
	if (config.records && w->side == 1)
		w->c->resp_body += n;	/* emit.h: this response's */
	else if (config.records)
		w->c->req_body += n;
	if (!w->st)
		return;
	if (w->side == 0)
		w->st->request_body += n;
	else
		w->st->response_body += n;
}

/* bpf_loop callback: one step (a head, a piece of body, a chunk line...). */
static long walk_step(__u32 i, struct walk *w)
{
	struct http_conn *c = w->c;
	struct http_dir *d;
	__u64 n;

	if (w->stop || w->pos >= w->end || c->ended)
		return 1;
	d = w->side ? &c->dir[1] : &c->dir[0];
	switch (d->state) {
	case DIR_HEAD:
		parse_head(w, d);
		break;
	case DIR_BODY:
	case DIR_CHUNK_DATA:
		n = w->end - w->pos;
		if (n > d->left)
			n = d->left;
		w->pos += n;
		d->left -= n;
		if (d->state == DIR_BODY) {
			body_bytes(w, n);
			if (!d->left) {
				d->state = DIR_HEAD;
				if (w->side == 1)
					response_done(c, w->key, w->st);
			}
		} else {
			/* The last two bytes of `left` are the chunk's CRLF. */
			__u64 data = d->left >= 2 ? n : (n > 2 - d->left ? n - (2 - d->left) : 0);

			body_bytes(w, data);
			if (!d->left)
				d->state = DIR_CHUNK_SIZE;
		}
		break;
	case DIR_CHUNK_SIZE:
		parse_chunk_size(w, d);
		break;
	case DIR_TRAILER:
		parse_trailer(w, d);
		break;
	case DIR_UNTIL_CLOSE:
		body_bytes(w, w->end - w->pos);
		w->pos = w->end;
		break;
	case DIR_TUNNEL:
		w->pos = w->end;
		break;
	default:
		lose(c, w->st, HTTP_K_LOST_UNSYNCED);
		return 1;
	}
	return w->stop || w->pos >= w->end;	/* done: spares bpf_loop a call to say so */
}

/* A segment ahead of the next expected byte (reordered on its way to the
 * hook, e.g. by a veth's per-CPU backlogs, or after a loss) whose bytes all
 * lie inside the body being received: its content is not needed, only that
 * it was seen. One such island per direction is remembered; the segments
 * that fill the hole up to it then carry the parser across. */
static __always_inline int hold_island(struct http_dir *d, __u32 seq, __u32 len, __s32 ahead)
{
	__u64 reach = (__u64)ahead + len;	/* from next_seq to this segment's end */

	if ((d->state != DIR_BODY && d->state != DIR_CHUNK_DATA) || reach > d->left)
		return 0;
	if (!d->island) {
		d->island = 1;
		d->island_start = seq;
		d->island_end = seq + len;
		return 1;
	}
	/* Overlapping or touching the island: it grows; elsewhere: a second hole. */
	if ((__s32)(seq - d->island_end) > 0 || (__s32)(seq + len - d->island_start) < 0)
		return 0;
	if ((__s32)(seq - d->island_start) < 0)
		d->island_start = seq;
	if ((__s32)(seq + len - d->island_end) > 0)
		d->island_end = seq + len;
	return 1;
}

/* The hole before the island is filled: skip the island's bytes of body. */
static __always_inline int join_island(struct walk *w, struct http_dir *d)
{
	__s32 beyond = (__s32)(d->island_end - d->next_seq);
	__u64 data;

	d->island = 0;
	if (beyond <= 0)
		return 1;
	if ((d->state != DIR_BODY && d->state != DIR_CHUNK_DATA) || beyond > d->left)
		return 0;	/* cannot be: the island was inside this body */
	if (d->state == DIR_BODY) {
		data = beyond;
	} else {
		/* The last two bytes of a chunk's `left` are its CRLF. */
		data = d->left > 2 ? d->left - 2 : 0;
		if (data > (__u64)beyond)
			data = beyond;
	}
	body_bytes(w, data);
	d->left -= beyond;
	d->next_seq = d->island_end;
	if (!d->left) {
		if (d->state == DIR_BODY) {
			d->state = DIR_HEAD;
			if (w->side == 1)
				response_done(w->c, w->key, w->st);
		} else {
			d->state = DIR_CHUNK_SIZE;
		}
	}
	return 1;
}

/* Where both directions of a connection meet: the client first. */
/* Where both directions of a connection meet: the client first. The key
 * holds the packet's source and destination; they are swapped when the
 * packet comes from the server. */
static __always_inline int conn_key(struct http_conn_key *key, __u16 sport, __u16 dport, int syn_only)
{
	int from_client;

	if (syn_only)
		from_client = 1;	/* a SYN without ACK comes from the client */
	else if (wanted_port(dport) && wanted_port(sport))
		from_client = dport <= sport;	/* ephemeral ports are the high ones */
	else
		from_client = wanted_port(dport);
	if (from_client) {
		key->cport = sport;
		key->sport = dport;
		return 0;
	}
#pragma unroll
	for (int i = 0; i < 16; i += 8) {
		__u64 a = *(__u64 *)(key->client + i);

		*(__u64 *)(key->client + i) = *(__u64 *)(key->server + i);
		*(__u64 *)(key->server + i) = a;
	}
	key->cport = dport;
	key->sport = sport;
	return 1;
}

/* One TCP segment of a target port, payload at [payload, end) of the skb.
 * Returns 1 when the frame belongs to a connection handed to user space.
 * A global function: the verifier checks it once, not once for each way
 * the caller's tunnel parsing can reach it. */
struct http_segment {
	struct http_conn_key key;
	__u32 side;		/* 0: client to server */
	__u32 seq;
	__u32 flags;		/* TCP_* */
	__u32 payload;		/* where the payload starts and ends in the skb */
	__u32 end;
};

__noinline int http_count_segment(struct __sk_buff *skb, struct http_segment *seg)
{
	struct http_conn_key *key;
	__u32 side, seq, payload, end, flags;
	struct http_backend_stats *st = 0;
	struct http_conn *c;
	struct zeroes *z;
	__u32 k0 = 0, len, backend;
	struct {
		__u8 syn, ack, fin, rst;
	} f;
	const typeof(f) *tcp = &f;

	if (!seg)
		return 0;
	key = &seg->key;
	side = seg->side;
	seq = seg->seq;
	payload = seg->payload;
	end = seg->end;
	if (end < payload || side > 1)
		return 0;
	flags = seg->flags;
	f.syn = !!(flags & TCP_SYN);
	f.ack = !!(flags & TCP_ACK);
	f.fin = !!(flags & TCP_FIN);
	f.rst = !!(flags & TCP_RST);
	len = end - payload;
	CUT(4, !skb->len);
	c = bpf_map_lookup_elem(&connections, key);
	CUT(5, !skb->len);	/* skb used: the function keeps its signature */
	if (tcp->syn) {
		/* A SYN (or SYN-ACK) starts a direction; a new SYN a new connection. */
		if (side == 0 && !tcp->ack) {
			if (c && c->dir[0].state != DIR_UNSYNCED && c->dir[0].isn == seq)
				return 0;	/* the same SYN again */
			z = bpf_map_lookup_elem(&zero, &k0);
			if (!z)
				return 0;
			backend = c && c->backend ? c->backend : backend_slot(key);
			if (c)
				close_conn(c, key, backend_of(c));
			if (bpf_map_update_elem(&connections, key, &z->conn, BPF_ANY))
				return 0;
			c = bpf_map_lookup_elem(&connections, key);
			if (!c)
				return 0;
			c->backend = backend;
			st = backend_of(c);
			c->dir[0].isn = seq;
			c->dir[0].next_seq = seq + 1;
			c->dir[0].state = DIR_HEAD;
			netbpf_inc(counters, HTTP_K_CONNECTIONS);
			if (st)
				st->connections++;
			sample_client(st, key);
		} else if (side == 1 && tcp->ack && c && c->dir[1].state == DIR_UNSYNCED) {
			c->dir[1].isn = seq;
			c->dir[1].next_seq = seq + 1;
			c->dir[1].state = DIR_HEAD;
		}
		return 0;
	}
	if (!c) {
		if (!len)
			return 0;
		/* Joined after the SYN: where messages start cannot be known. */
		z = bpf_map_lookup_elem(&zero, &k0);
		if (!z || bpf_map_update_elem(&connections, key, &z->conn, BPF_NOEXIST))
			return 0;
		c = bpf_map_lookup_elem(&connections, key);
		if (!c)
			return 0;
		/* Another CPU may have found the new entry first, and lost it itself. */
		if (!end_conn(c, CONN_LOST))
			return config.hand_off;
		c->handed = config.hand_off;
		c->backend = backend_slot(key);
		netbpf_inc(counters, HTTP_K_MIDSTREAM);
		st = backend_of(c);
		sample_client(st, key);
		if (st) {
			st->midstream++;
			if (c->handed)
				st->handed_off++;
			else
				st->lost_connections++;
		}
		return c->handed;
	}
	if (c->ended == CONN_LOST) {
		__u32 head = c->fifo_head, tail = c->fifo_tail;

		/* emit.h: a line for each request counted, its response not followed;
		 * of two CPUs with a frame of it at once, the one that moves the head. */
		if (config.records && head != tail &&
		    __sync_val_compare_and_swap(&c->fifo_head, head, tail) == head)
			http_rec_unanswered(key, c, head, tail);
		return c->handed;
	}
	if (c->ended)
		return 0;
	st = backend_of(c);
	CUT(6, !skb->len);
	if (len) {
		struct http_dir *d = side ? &c->dir[1] : &c->dir[0];
		struct walk w = { .skb = skb, .c = c, .st = st, .key = key, .pos = payload, .end = end,
				  .side = side };
		__s32 ahead = (__s32)(seq - d->next_seq);

		netbpf_inc(counters, HTTP_K_SEGMENTS);
		if (d->state == DIR_UNSYNCED) {
			lose(c, st, HTTP_K_LOST_UNSYNCED);
			return c->handed;
		}
		if (ahead > 0) {
			if (hold_island(d, seq, len, ahead))
				return 0;
			lose(c, st, HTTP_K_LOST_GAP);
			return c->handed;
		}
		if ((__s64)ahead + len <= 0) {
			netbpf_inc(counters, HTTP_K_RETRANSMITTED);
		} else {
			w.pos += -ahead;
#if defined(HTTP_CUT) && HTTP_CUT == 7
			d->next_seq = seq + len;	/* everything but the walk */
			return !skb->len;
#endif
			bpf_loop(HTTP_MAX_STEPS, walk_step, &w, 0);
			if (c->ended == CONN_LOST)	/* this frame to user space only if none of it was parsed */
				return c->handed && !ahead && w.pos == payload;
			if (w.pos < w.end) {
				lose(c, st, HTTP_K_LOST_STEPS);
				return 0;	/* parsed in part: user space takes the next one */
			}
			d->next_seq = seq + len;
			if (d->island && (__s32)(d->next_seq - d->island_start) >= 0 &&
			    !join_island(&w, d)) {
				lose(c, st, HTTP_K_LOST_GAP);
				return 0;	/* parsed: user space takes the next one */
			}
		}
	}
	if (tcp->rst || (tcp->fin && side == 1))
		close_conn(c, key, st);
	return 0;
}

#endif /* NETBPF_HTTP_COUNT_H */

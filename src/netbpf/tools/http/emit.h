/* SPDX-License-Identifier: GPL-2.0 */
/* netbpf http: one fixed-size record per transaction, for the lines and
 * --json (config.records).
 *
 * Included by count.h. What a person reads of a transaction is taken where
 * the parser already is: the request's method, target, Host and tag header
 * (--tag-header) when its head is parsed (count.h has the head in its scratch
 * buffer, and notes where Host and the tag's line are while it looks for
 * Content-Length); the status and times when its response is paired and
 * ends. The request's part waits in the `requests` hash, keyed by the
 * connection and the request's place in its FIFO, and is sent whole to the
 * `records` ring when the response ends. Nothing else crosses: a record the
 * ring cannot take is counted (records_lost, per CPU and per backend), never
 * replaced by a guess.
 */
#ifndef NETBPF_HTTP_EMIT_H
#define NETBPF_HTTP_EMIT_H

/* The outermost tunnel a segment came through (http.bpf.c). */
struct http_outer {
	__u8 src[16];
	__u8 dst[16];
	__u32 vni;
	__u8 encap;		/* 0 none, 1 IPIP, 2 VXLAN */
	__u8 family;
	__u8 pad[2];
};

struct http_rec_key {
	struct http_conn_key conn;
	__u32 index;		/* the request's place in the connection's FIFO (not wrapped) */
	__u32 pad;
};

NETBPF_RINGBUF(records, 16 << 20);	/* resized before load: --record-buffer */

/* Requests waiting for the end of their response. LRU: a request whose
 * connection vanished unanswered is forgotten when room is needed; if one
 * still waiting is evicted, its record is counted missing when the response
 * ends. Resized before load (1 entry when records are off). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct http_rec_key);
	__type(value, struct http_record);
} requests SEC(".maps");

/* A record is built here (too large for the BPF stack), with its key, and
 * the outermost tunnel of the frame being parsed (http.bpf.c; encap 0: none). */
struct record_scratch {
	struct http_record rec;
	struct http_rec_key key;
	struct http_outer outer;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record_scratch);
} record_scratch SEC(".maps");

NETBPF_BTF_EXPORT(http_record);

/* ASCII upper-case letters to lower case, eight bytes at once and nothing
 * else changed (a plain | 0x20 would also make '^' of '~'). */
static __always_inline __u64 fold8(__u64 x)
{
	__u64 h = x & 0x7f7f7f7f7f7f7f7fULL;
	__u64 ge_a = h + 0x3f3f3f3f3f3f3f3fULL;	/* bit 7 set where h >= 'A' */
	__u64 gt_z = h + 0x2525252525252525ULL;	/* bit 7 set where h > 'Z' */

	return x | ((ge_a & ~gt_z & ~x & 0x8080808080808080ULL) >> 2);
}

static __always_inline __u64 head_word(const __u8 *buf, __u32 i)
{
	return *(const __u64 *)(buf + (i & (HTTP_HEAD_MAX - 1)));
}

/* 1 where a value starts with the usual blank after the colon (any more are
 * stripped by user space), 0 otherwise. */
static __always_inline __u32 blank_at(const __u8 *buf, __u32 i)
{
	__u8 c = buf[i & (HTTP_HEAD_MAX - 1)];

	return c == ' ' || c == '\t';
}

#define HOST_COLON 0x3a74736f68ULL	/* "host:", little-endian */

/* A header line [line, eol) of the head in buf: Host or the tag header?
 * The name to match is at most 32 bytes with its colon: four words, no loop. */
static __always_inline void http_note_field(const __u8 *buf, __u32 line, __u32 eol, struct http_fields *f)
{
	__u32 n = config.tag_len;

	if ((fold8(head_word(buf, line)) & 0xffffffffffULL) == HOST_COLON) {
		f->host_from = line + 5 + blank_at(buf, line + 5);
		f->host_eol = eol;
		return;
	}
	if (!n || n > HTTP_TAG_NAME_MAX + 1)
		return;
#pragma unroll
	for (int k = 0; k < (HTTP_TAG_NAME_MAX + 1) / 8; k++) {
		__u32 left = n - k * 8;
		__u64 mask = left >= 8 ? ~0ULL : (1ULL << (left * 8)) - 1;

		if (k * 8 >= n)
			break;
		if ((fold8(head_word(buf, line + k * 8)) & mask) != config.tag_name[k])
			return;
	}
	f->tag_from = line + n + blank_at(buf, line + n);
	f->tag_eol = eol;
}

/* A header line [line, eol) of the head in the scratch buffer, from count.h's
 * scan_line (with records only). A global function: verified once, and
 * without stack of its own, as scan_line is the deepest of the parser's calls. */
__noinline int http_line_field(struct scratch *sc, __u32 line, __u32 eol)
{
	if (sc)
		http_note_field(sc->buf, line, eol, &sc->fields);
	return 0;
}

/* Eight bytes at a time, each stored before the next is loaded: the
 * compiler's memcpy of a 2-aligned struct loads it all first, onto the stack. */
static __always_inline void copy_words(void *dst, const void *src, int n)
{
#pragma unroll
	for (int i = 0; i < 5; i++)
		if (i < n)
			((__u64 *)dst)[i] = ((const volatile __u64 *)src)[i];
}

/* Bytes [from, eol) of the head at `head` in the skb into dst (max bytes):
 * how many were copied; *cut set when there were more. */
#define COPY_FIELD(skb, head, from, eol, dst, max, cut, cut_flag)			\
	({										\
		__u32 __n = (eol) > (from) ? (eol) - (from) : 0;			\
		if (__n > (max)) {							\
			__n = (max);							\
			cut |= (cut_flag);						\
		}									\
		if (__n < 1 || __n > (max) ||						\
		    bpf_skb_load_bytes(skb, (head) + (from), dst, __n))			\
			__n = 0;							\
		__n;									\
	})

/* The request's part of its record, kept until its response ends. A global
 * function: verified once, not in each of the parser's paths. */
__noinline int http_rec_request(struct __sk_buff *skb, const struct http_conn_key *key, __u64 now,
				__u32 index, __u32 isn)
{
	struct record_scratch *rs;
	struct http_rec_key *k;
	struct http_fields *in;
	struct http_outer *outer;
	struct http_record *r;
	struct scratch *sc;
	__u32 k0 = 0;

	if (!key)
		return 0;
	/* What the arguments say is stored at once: nothing of them is kept on
	 * the stack across the calls (this runs four calls deep, near the
	 * verifier's 512-byte limit for all of them together). */
	rs = bpf_map_lookup_elem(&record_scratch, &k0);
	if (!rs)
		return 0;
	r = &rs->rec;
	r->req_ts = now;
	r->isn = isn;
	k = &rs->key;	/* a map key may be a map value: the stack is short */
	copy_words(&k->conn, key, sizeof(k->conn) / 8);
	k->index = index;
	k->pad = 0;
	copy_words(r->client, key->client, 2);
	copy_words(r->server, key->server, 2);
	r->cport = key->cport;
	r->sport = key->sport;
	r->family = key->family;
	outer = &rs->outer;
	copy_words(r->outer_src, outer->src, 2);
	copy_words(r->outer_dst, outer->dst, 2);
	r->vni = outer->encap ? outer->vni : 0;
	r->encap = outer->encap;
	r->outer_family = outer->family;
	r->resp_ts = 0;
	r->end_ts = 0;
	r->resp_body = 0;
	r->status = 0;
	sc = bpf_map_lookup_elem(&scratch, &k0);	/* count.h: the head just scanned */
	if (!sc)
		return 0;
	in = &sc->fields;
	r->req_body = in->req_body;
	r->flags = in->flags;
	r->method_len = COPY_FIELD(skb, in->head, 0, in->target_from - 1, r->method, HTTP_REC_METHOD,
				   r->flags, 0);
	/* The target: up to " HTTP/1.x" at the start line's end (count.h checked it). */
	r->target_len = COPY_FIELD(skb, in->head, in->target_from, in->first_eol - 9, r->target, HTTP_REC_TARGET,
				   r->flags, HTTP_REC_TARGET_CUT);
	r->host_len = 0;
	if (in->host_from) {
		r->flags |= HTTP_REC_HAS_HOST;
		r->host_len = COPY_FIELD(skb, in->head, in->host_from, in->host_eol, r->host, HTTP_REC_HOST,
					 r->flags, HTTP_REC_HOST_CUT);
	}
	r->tag_len = 0;
	if (in->tag_from) {
		r->flags |= HTTP_REC_HAS_TAG;
		r->tag_len = COPY_FIELD(skb, in->head, in->tag_from, in->tag_eol, r->tag, HTTP_REC_TAG,
					r->flags, HTTP_REC_TAG_CUT);
	}
	bpf_map_update_elem(&requests, k, r, BPF_ANY);
	return 0;
}

/* A response was paired with the request at the FIFO's head (count.h). */
static __always_inline void http_rec_pair(struct http_conn *c, __u32 status, __u64 now)
{
	c->resp_index = c->fifo_head;
	c->resp_status = status;
	c->resp_ts = now;
	c->resp_body = 0;
}

/* The transaction at FIFO place `index` ended (status 0: no response seen):
 * the whole record to the ring, or counted lost. The request's entry is taken
 * by its delete: where two CPUs end the same transaction at once (the
 * connection lost on one while its response ends on the other), only the one
 * whose delete succeeds sends it. Global. */
__noinline int http_rec_emit(const struct http_conn_key *key, struct http_conn *c, __u64 now,
			     __u32 index, __u32 status)
{
	struct http_backend_stats *st;
	struct http_rec_key k = {};
	struct http_record *r, *out;

	if (!key || !c)
		return 0;
	__builtin_memcpy(&k.conn, key, sizeof(k.conn));
	k.index = index;
	r = bpf_map_lookup_elem(&requests, &k);
	if (r && r->isn == c->dir[0].isn) {
		out = bpf_ringbuf_reserve(&records, sizeof(*out), 0);
		if (out) {
			__builtin_memcpy(out, r, sizeof(*out));
			out->status = status;
			out->resp_ts = status ? c->resp_ts : 0;
			out->end_ts = now;
			out->resp_body = status ? c->resp_body : 0;
			if (c->ended == CONN_LOST)
				out->flags |= HTTP_REC_NOT_FOLLOWED;
			/* A chunked request's size is known once it was the last one and has ended. */
			if ((out->flags & HTTP_REC_REQ_BODY_UNKNOWN) && index + 1 == c->fifo_tail &&
			    c->dir[0].state == DIR_HEAD) {
				out->req_body = c->req_body;
				out->flags &= ~HTTP_REC_REQ_BODY_UNKNOWN;
			}
		}
		if (bpf_map_delete_elem(&requests, &k)) {
			if (out)	/* another CPU took it */
				bpf_ringbuf_discard(out, 0);
			return 0;
		}
		if (out) {
			bpf_ringbuf_submit(out, 0);
			netbpf_inc(counters, HTTP_K_RECORDS);
			return 0;
		}
		netbpf_inc(records_lost, 0);
		netbpf_inc(counters, HTTP_K_RECORDS_LOST);
	} else {
		netbpf_inc(counters, HTTP_K_RECORDS_MISSING);
	}
	/* Shown beside the backend's counts: its lines are fewer than its requests. */
	st = backend_of(c);
	if (st)
		st->records_lost++;
	return 0;
}

struct unanswered_walk {
	struct http_conn_key *key;
	struct http_conn *c;
	__u32 head;
	__u32 tail;
};

static long unanswered_request(__u32 i, struct unanswered_walk *uw)
{
	if (uw->head + i == uw->tail)
		return 1;
	http_rec_emit(uw->key, uw->c, 0, uw->head + i, 0);
	return 0;
}

/* Requests [head, tail) of the FIFO will get no response seen here (the
 * connection closed, or is not followed any more): a line each, without a
 * status. The caller has taken them off the FIFO. */
static __always_inline void http_rec_unanswered(struct http_conn_key *key, struct http_conn *c,
						__u32 head, __u32 tail)
{
	struct unanswered_walk uw = { .key = key, .c = c, .head = head, .tail = tail };

	bpf_loop(HTTP_FIFO, unanswered_request, &uw, 0);
}

#endif /* NETBPF_HTTP_EMIT_H */

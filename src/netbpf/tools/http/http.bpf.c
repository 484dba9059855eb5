// SPDX-License-Identifier: GPL-2.0
/* netbpf http: the socket filter of an AF_PACKET socket.
 *
 * It runs on a copy of every frame queued to the capture socket and returns
 * how many bytes of it to keep (0: the copy is dropped in the kernel, the real
 * receivers are never affected). It keeps the TCP segments whose source or
 * destination port is a target port, plain or inside one or two tunnel
 * headers: IPIP (IPv4 in IPv4, Calico cross-subnet), IPv6-in-IPv4/IPv6 and
 * VXLAN (Flannel, Calico VXLAN). Segments that carry nothing the HTTP parser
 * needs (ACKs without payload, SYN, FIN or RST) are dropped here too, and a
 * kept frame is cut at the end of its IP packet (Ethernet pads short frames).
 * Payload is never cut: chunked framing and pipelined messages need it all.
 *
 * The socket is SOCK_DGRAM, so the frame starts at the network header on
 * every kind of device (Ethernet, loopback, tun), and skb->protocol says what
 * that header is. Socket filters cannot read packets directly: every header
 * is copied out with bpf_skb_load_bytes(), which also reaches headers that
 * sit in paged fragments.
 */
#include <netbpf/common.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "http.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define VXLAN_FLAG_VNI 0x08
#define MAX_TUNNELS 2		/* tunnel headers looked through, e.g. IPIP inside VXLAN */
#define MAX_IPV6_EXT 4		/* extension headers skipped before giving up */

NETBPF_BTF_EXPORT(http_config);
NETBPF_COUNTERS(counters, HTTP_COUNTERS);

const volatile struct http_config config = {};

enum encap { ENCAP_NONE, ENCAP_IPIP, ENCAP_VXLAN };

/* Profiling (bench/http_prog_cost.py builds with -DHTTP_CUT=n): leave at stage n. */
#ifdef HTTP_CUT
#define CUT(n, ret) do { if (HTTP_CUT == (n)) return (ret); } while (0)
#else
#define CUT(n, ret) do { } while (0)
#endif

/* Whether v is one of the first n entries of a config array (unrolled to the
 * array's size: the verifier wants a constant bound). */
#define config_has(array, n, v)								\
	({										\
		int __has = 0;								\
		_Pragma("unroll")							\
		for (int __i = 0; __i < (int)(sizeof(array) / sizeof((array)[0])); __i++)	\
			if (__i < (n) && (array)[__i] == (v)) {				\
				__has = 1;						\
				break;							\
			}								\
		__has;									\
	})

static __always_inline int wanted_port(__u16 port)
{
	return config_has(config.ports, config.n_ports, port);
}

static __always_inline int wanted_ifindex(__u32 ifindex)
{
	return !config.n_ifindexes || config_has(config.ifindexes, config.n_ifindexes, ifindex);
}

#include "count.h"

static __always_inline int vxlan_port(__u16 port)
{
	return config_has(config.vxlan_ports, config.n_vxlan_ports, port);
}

/* One IP header at *off: moves *off past it (and past IPv6 extension
 * headers), sets *end to where the IP payload ends and returns the next
 * protocol, or -1 when the frame is too short, not IP or a later fragment
 * (which carries no TCP header). */
static __always_inline int ip_header(struct __sk_buff *skb, __u16 l3, __u32 *off, __u32 *end,
				     struct http_conn_key *a)
{
	if (l3 == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, *off, &ip, sizeof(ip)) || ip.version != 4 || ip.ihl < 5)
			return -1;
		if (ip.frag_off & bpf_htons(0x1fff))
			return -1;
		*end = *off + bpf_ntohs(ip.tot_len);
		*off += ip.ihl * 4;
		__builtin_memset(a, 0, sizeof(*a));
		__builtin_memcpy(a->client, &ip.saddr, 4);	/* source, until conn_key() */
		__builtin_memcpy(a->server, &ip.daddr, 4);
		a->family = 4;
		if (*end < *off)
			return -1;
		return ip.protocol;
	}
	if (l3 == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		__u8 next;

		if (bpf_skb_load_bytes(skb, *off, &ip6, sizeof(ip6)) || ip6.version != 6)
			return -1;
		/* payload_len 0 is a jumbogram (BIG TCP): runs to the end of the frame. */
		*end = ip6.payload_len ? *off + sizeof(ip6) + bpf_ntohs(ip6.payload_len) : skb->len;
		*off += sizeof(ip6);
		__builtin_memcpy(a->client, &ip6.saddr, 16);
		__builtin_memcpy(a->server, &ip6.daddr, 16);
		a->family = 6;
		next = ip6.nexthdr;
#pragma unroll
		for (int i = 0; i < MAX_IPV6_EXT; i++) {
			__u8 ext[4];

			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS &&
			    next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			if (bpf_skb_load_bytes(skb, *off, ext, sizeof(ext)))
				return -1;
			if (next == IPPROTO_FRAGMENT) {
				if ((ext[2] << 8 | ext[3]) & 0xfff8)
					return -1;
				*off += 8;
			} else if (next == IPPROTO_AH) {
				*off += (ext[1] + 2) * 4;
			} else {
				*off += (ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		if (*end < *off)
			return -1;
		return next;
	}
	return -1;
}

/* The outermost tunnel, for records (emit.h): its addresses are still the key's. */
static __always_inline void outer_of(struct http_segment *seg, __u8 encap, __u32 vni)
{
	struct record_scratch *rs;
	struct http_outer *o;
	__u32 k0 = 0;

	if (!config.records || !(rs = bpf_map_lookup_elem(&record_scratch, &k0)))
		return;
	o = &rs->outer;
	__builtin_memcpy(o->src, seg->key.client, 16);
	__builtin_memcpy(o->dst, seg->key.server, 16);
	o->family = seg->key.family;
	o->encap = encap;
	o->vni = vni;
}

/* The common case, IPv4 without options and TCP: both headers in one copy
 * (each bpf_skb_load_bytes() is a helper call). 0: anything else, for
 * ip_header() and the tunnel loop. */
static __always_inline int plain_tcp4(struct __sk_buff *skb, __u32 start, struct http_conn_key *a,
				      struct tcphdr *tcp, __u32 *end)
{
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
	} h;

	if (bpf_skb_load_bytes(skb, start, &h, sizeof(h)) || h.ip.version != 4 || h.ip.ihl != 5 ||
	    h.ip.protocol != IPPROTO_TCP || (h.ip.frag_off & bpf_htons(0x1fff)))
		return 0;
	*end = start + bpf_ntohs(h.ip.tot_len);
	__builtin_memset(a, 0, sizeof(*a));
	__builtin_memcpy(a->client, &h.ip.saddr, 4);	/* source, until conn_key() */
	__builtin_memcpy(a->server, &h.ip.daddr, 4);
	a->family = 4;
	*tcp = h.tcp;
	return 1;
}

/* One frame whose network header is at `start`: how many bytes of it to keep. */
static __always_inline int http_frame(struct __sk_buff *skb, __u32 start)
{
	__u16 l3 = bpf_ntohs(skb->protocol);
	__u32 off = start, end = 0, packet_end = 0;
	enum encap encap = ENCAP_NONE;
	struct http_segment seg = {};	/* the innermost addresses, then the segment */
	struct tcphdr tcp;
	int proto = -1;

	CUT(1, 0);
	netbpf_inc(counters, HTTP_FRAMES_SEEN);
	if (!wanted_ifindex(skb->ifindex)) {
		netbpf_inc(counters, HTTP_OTHER_IFACE);
		return 0;
	}
	if (l3 != ETH_P_IP && l3 != ETH_P_IPV6) {
		netbpf_inc(counters, HTTP_NOT_IP);
		return 0;
	}

	if (l3 == ETH_P_IP && plain_tcp4(skb, start, &seg.key, &tcp, &end)) {
		off = start + sizeof(struct iphdr);
		packet_end = end;
		netbpf_inc(counters, HTTP_PROTO_TCP);
		goto tcp_header;
	}

#pragma unroll
	for (int depth = 0; depth <= MAX_TUNNELS; depth++) {
		proto = ip_header(skb, l3, &off, &end, &seg.key);
		if (depth == 0)
			packet_end = end;
		if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) {
			/* IP in IP: the payload is the inner IP header. */
			l3 = proto == IPPROTO_IPIP ? ETH_P_IP : ETH_P_IPV6;
			if (encap == ENCAP_NONE)
				outer_of(&seg, ENCAP_IPIP, 0);
			encap = ENCAP_IPIP;
			continue;
		}
		if (proto == IPPROTO_UDP) {
			struct udphdr udp;
			struct {
				__u8 flags;
				__u8 reserved[7];
				struct ethhdr eth;
			} vxlan;

			if (bpf_skb_load_bytes(skb, off, &udp, sizeof(udp)) ||
			    !vxlan_port(bpf_ntohs(udp.dest)))
				break;
			if (bpf_skb_load_bytes(skb, off + sizeof(udp), &vxlan, sizeof(vxlan)) ||
			    !(vxlan.flags & VXLAN_FLAG_VNI))
				break;
			/* VXLAN: 8-byte header, then a whole Ethernet frame. */
			off += sizeof(udp) + sizeof(vxlan);
			l3 = bpf_ntohs(vxlan.eth.h_proto);
			if (l3 == ETH_P_8021Q || l3 == ETH_P_8021AD) {
				__be16 tag[2];

				if (bpf_skb_load_bytes(skb, off, tag, sizeof(tag)))
					break;
				l3 = bpf_ntohs(tag[1]);
				off += sizeof(tag);
			}
			if (encap == ENCAP_NONE)
				outer_of(&seg, ENCAP_VXLAN,
					 vxlan.reserved[3] << 16 | vxlan.reserved[4] << 8 | vxlan.reserved[5]);
			encap = ENCAP_VXLAN;
			continue;
		}
		break;
	}

	switch (proto) {
	case IPPROTO_TCP:
		netbpf_inc(counters, HTTP_PROTO_TCP);
		break;
	case IPPROTO_UDP:
		netbpf_inc(counters, HTTP_PROTO_UDP);
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		netbpf_inc(counters, HTTP_PROTO_ICMP);
		return 0;
	case -1:
		netbpf_inc(counters, HTTP_MALFORMED);
		return 0;
	default:
		netbpf_inc(counters, HTTP_PROTO_OTHER);
		return 0;
	}

	if (bpf_skb_load_bytes(skb, off, &tcp, sizeof(tcp))) {
		netbpf_inc(counters, HTTP_MALFORMED);
		return 0;
	}
tcp_header:
	if (tcp.doff < 5 || end < off + tcp.doff * 4 || skb->len < off + tcp.doff * 4) {
		netbpf_inc(counters, HTTP_MALFORMED);
		return 0;
	}
	if (!wanted_port(bpf_ntohs(tcp.source)) && !wanted_port(bpf_ntohs(tcp.dest)))
		return 0;
	CUT(2, 0);
	if (config.count_in_kernel) {
		__u32 payload = off + tcp.doff * 4;

		if (config.records && encap == ENCAP_NONE)
			outer_of(&seg, ENCAP_NONE, 0);	/* not the previous frame's tunnel */

		if (end <= payload && !tcp.syn && !tcp.fin && !tcp.rst) {
			netbpf_inc(counters, HTTP_ACKS_SKIPPED);
			return 0;
		}
		if (end > skb->len)
			end = skb->len;
		seg.side = conn_key(&seg.key, bpf_ntohs(tcp.source), bpf_ntohs(tcp.dest),
				    tcp.syn && !tcp.ack);
		seg.seq = bpf_ntohl(tcp.seq);
		seg.flags = ((__u8 *)&tcp)[13];
		seg.payload = payload;
		seg.end = end;
		CUT(3, 0);
		if (!http_count_segment(skb, &seg) || !config.hand_off)
			return 0;
		netbpf_inc(counters, HTTP_K_HANDED_OFF);
	} else if (!config.keep_acks && end <= off + tcp.doff * 4 && !tcp.syn && !tcp.fin && !tcp.rst) {
		/* A segment with no payload and none of SYN/FIN/RST tells the
		 * reassembler nothing: most ACKs of a busy connection end here. */
		netbpf_inc(counters, HTTP_ACKS_SKIPPED);
		return 0;
	}
	/* Keep the IP packet, not the link layer's padding after it. */
	if (packet_end > skb->len)
		packet_end = skb->len;
	netbpf_inc(counters, HTTP_FRAMES_KEPT);
	netbpf_add(&counters, HTTP_BYTES_KEPT, packet_end);
	if (encap == ENCAP_IPIP)
		netbpf_inc(counters, HTTP_KEPT_IPIP);
	else if (encap == ENCAP_VXLAN)
		netbpf_inc(counters, HTTP_KEPT_VXLAN);
	return packet_end;
}

SEC("socket")
int netbpf_http(struct __sk_buff *skb)
{
	return http_frame(skb, 0);	/* SOCK_DGRAM: the frame starts at the network header */
}

/* The other hook: tc (tcx) ingress and egress of named Ethernet interfaces,
 * counting only (config.count_in_kernel); no packet socket, so no clone of
 * each frame for it. The traffic always goes on. */
SEC("tc")
int netbpf_http_tc(struct __sk_buff *skb)
{
	http_frame(skb, ETH_HLEN);
	return 0;	/* TC_ACT_OK */
}

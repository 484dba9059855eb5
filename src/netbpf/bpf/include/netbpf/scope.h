/* SPDX-License-Identifier: GPL-2.0 */
/* The filters netbpf drops and netbpf tcp share (netbpf/tracepoints/scope.py sets them before
 * load): namespace, address or network, port. Each is off until set.
 */
#ifndef NETBPF_SCOPE_H
#define NETBPF_SCOPE_H

#include <linux/types.h>

const volatile __u32 filter_netns = 0;
const volatile __u8 filter_family = 0;	/* 4 or 6: an address filter is on */
const volatile __u8 filter_prefix = 0;
const volatile __u8 filter_addr[16] = {};
const volatile __u8 filter_port = 0;
const volatile __u16 port_value = 0;

/* Is a 16-byte address (IPv4 in the first 4) inside filter_addr/filter_prefix? */
static __always_inline int addr_match(const __u8 *addr)
{
	int prefix = filter_prefix;

#pragma unroll
	for (int i = 0; i < 16; i++) {
		int bits = prefix - i * 8;
		__u8 mask;

		if (bits <= 0)
			break;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[i] ^ filter_addr[i]) & mask)
			return 0;
	}
	return 1;
}

#endif

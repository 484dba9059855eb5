// SPDX-License-Identifier: GPL-2.0
/* netbpf http for kernels before 6.9: the same program, its head scan one
 * bpf_loop() step per line instead of a loop bounded by may_goto (see count.h).
 * The loader takes this object where features.has_may_goto() says no. */
#define HTTP_BPF_LOOP 1
#include "http.bpf.c"

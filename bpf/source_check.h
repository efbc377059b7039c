/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The source check: a pod with PF_POD_SRC_CHECK may only send IP packets
 * from its own addresses (see pf_sources in podfence_abi.h). It runs at the
 * pod's egress before the neighbour-discovery pass and before conntrack and
 * policy, so a forged source can neither open a flow nor ride an existing
 * one, while DAD and ND from :: or a link-local address still pass.
 */
#ifndef PODFENCE_SOURCE_CHECK_H
#define PODFENCE_SOURCE_CHECK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "counters.h"
#include "maps.h"
#include "parse.h"

/* Unspecified and IPv6 link-local sources need no lookup; every other
 * source costs one hash lookup. */
static __always_inline int pf_source_owned(__u32 slot, const struct pf_pkt *p)
{
	struct pf_src_key k = {.slot = slot, .family = p->family};
	__u64 hi, lo;

	__builtin_memcpy(&hi, p->src, 8);
	__builtin_memcpy(&lo, p->src + 8, 8);
	if (hi == 0 && lo == 0) /* 0.0.0.0 (rest of the bytes zero) or :: */
		return 1;
	/* fe80::/64: the first 8 bytes are fe 80 00 00 00 00 00 00. */
	if (p->family == PF_FAMILY_V6 && hi == bpf_cpu_to_be64(0xfe80000000000000ull))
		return 1;
	__builtin_memcpy(k.addr, p->src, 16);
	return bpf_map_lookup_elem(&pf_sources, &k) != NULL;
}

static __always_inline void pf_count_spoofed(__u32 slot, __u32 dir, __u32 len)
{
	__u32 idx = slot * PF_NUM_DIRS + dir;
	struct pf_counter *c = bpf_map_lookup_elem(&pf_counters, &idx);

	if (!c)
		return;
	c->spoofed_packets++;
	c->spoofed_bytes += len;
}

/* 1 when the packet must be dropped as spoofed (counted and reported here).
 * Only egress of pods with the check on, and only frames whose IP header
 * parsed (p->family set): non-IP frames such as ARP are not judged. */
static __always_inline int pf_source_spoofed(__u32 slot, __u32 dir, __u32 pod_flags,
					     const struct pf_pkt *p, __u32 len)
{
	if (dir != PF_DIR_EGRESS || !(pod_flags & PF_POD_SRC_CHECK) || !p->family)
		return 0;
	if (pf_source_owned(slot, p))
		return 0;
	pf_count_spoofed(slot, dir, len);
	pf_emit_drop_reason(slot, dir, p, len, PF_DROP_SPOOFED);
	return 1;
}

#endif /* PODFENCE_SOURCE_CHECK_H */

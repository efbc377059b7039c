/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Fragments of admitted datagrams (pf_frags, LRU hash; podfence_abi.h).
 * Only the first fragment carries ports, so it alone is judged by conntrack
 * and policy; when it passes and more fragments follow it records the
 * datagram, and a later fragment passes when it finds that record. A later
 * fragment nobody recorded (its first was dropped, not seen yet, or is a
 * forgery) gets no port: see pf_decide_related() in engine.h.
 * Unfragmented packets never reach this file (p->frag and p->first_frag are
 * 0): the established fast path pays no lookup for it.
 *
 * Races: two CPUs recording the same datagram write the same key; the later
 * stamp wins, which only moves the expiry by microseconds.
 */
#ifndef PODFENCE_FRAG_H
#define PODFENCE_FRAG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "counters.h"
#include "maps.h"
#include "parse.h"

static __always_inline void pf_frag_key_init(struct pf_frag_key *k, __u32 slot, __u8 dir,
					     const struct pf_pkt *p)
{
	k->slot = slot;
	k->id = p->frag_id;
	k->family = p->family;
	/* A v6 first fragment's p->proto is past any header after the
	 * fragment header, a later one's is the fragment header's next header. */
	k->proto = p->family == PF_FAMILY_V4 ? p->proto : 0;
	k->dir = dir;
	k->pad = 0;
	__builtin_memcpy(k->src, p->src, 16);
	__builtin_memcpy(k->dst, p->dst, 16);
}

/* The first fragment of a datagram passed: admit the rest. A full table
 * evicts the least recently used datagram, long complete in practice.
 * audit: it passed as would-deny (PF_FRAG_AUDIT). */
static __always_inline void pf_frag_record(__u32 slot, __u8 dir, const struct pf_pkt *p, int audit)
{
	struct pf_frag_key k;
	struct pf_frag_val v = {
		.first_seen_ns =
			(bpf_ktime_get_coarse_ns() & ~PF_FRAG_AUDIT) | (audit ? PF_FRAG_AUDIT : 0),
	};

	pf_frag_key_init(&k, slot, dir, p);
	bpf_map_update_elem(&pf_frags, &k, &v, BPF_ANY);
}

/* Was this non-first fragment's datagram admitted, recently? Read only: a
 * datagram's fragments arrive within milliseconds, a stream of them never
 * keeps an old record alive. PF_VERDICT_ALLOW, PF_VERDICT_AUDIT (its first
 * fragment passed as would-deny and the pod still audits), or
 * PF_VERDICT_DENY: not known, judge it without ports. */
static __always_inline int pf_frag_admitted(__u32 slot, __u8 dir, int audit, const struct pf_pkt *p)
{
	struct pf_frag_key k;
	struct pf_frag_val *v;
	__u64 seen;

	pf_frag_key_init(&k, slot, dir, p);
	v = bpf_map_lookup_elem(&pf_frags, &k);
	if (!v)
		return PF_VERDICT_DENY;
	seen = v->first_seen_ns;
	if ((__s64)(bpf_ktime_get_coarse_ns() - seen) > (__s64)PF_FRAG_TIMEOUT)
		return PF_VERDICT_DENY;
	if (!(seen & PF_FRAG_AUDIT))
		return PF_VERDICT_ALLOW;
	return audit ? PF_VERDICT_AUDIT : PF_VERDICT_DENY;
}

#endif /* PODFENCE_FRAG_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The per-CPU cache of established flows in front of conntrack (pf_flowcache;
 * what it may and may not change: podfence_abi.h). The engine looks a flow
 * up here before conntrack and fills the entry after a conntrack hit.
 */
#ifndef PODFENCE_FLOW_CACHE_H
#define PODFENCE_FLOW_CACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "maps.h"

_Static_assert(sizeof(struct pf_ct_key) == PF_FC_KEY_WORDS * 4,
	       "the wide key fills an entry's key");
_Static_assert(sizeof(struct pf_ct4_key) == 5 * 4, "the narrow key is words 0-4");
_Static_assert(__builtin_offsetof(struct pf_fc_entry, key) % 8 == 0 &&
		       _Alignof(struct pf_fc_entry) == 8,
	       "an entry's key is 8-byte aligned");
_Static_assert(_Alignof(union pf_ct_keybuf) == 8, "a flow's key is 8-byte aligned");

/* The key's words as the cache compares them: pf_ct4_key for IPv4 (the
 * zeroed rest of the buffer is not compared), pf_ct_key for IPv6. */
static __always_inline unsigned pf_fc_words(__u8 family)
{
	return family == PF_FAMILY_V4 ? sizeof(struct pf_ct4_key) / 4 : PF_FC_KEY_WORDS;
}

/* The entry a flow of kb (built by pf_ct_key_build) owns, whoever holds it. */
static __always_inline struct pf_fc_entry *pf_fc_slot(const union pf_ct_keybuf *kb, __u8 family)
{
	__u32 idx = pf_fc_index((const __u32 *)kb, pf_fc_words(family));

	return bpf_map_lookup_elem(&pf_flowcache, &idx);
}

/* The key's words read two at a time where they can be: 7 compares
 * instead of 11 for IPv6, 3 instead of 5 for IPv4. The
 * words were written through the key's own fields, hence may_alias; both
 * sides are 8-byte aligned (asserted above). */
typedef __u64 __attribute__((may_alias)) pf_fc_dword;

static __always_inline int pf_fc_key_eq(const __u32 *a, const __u32 *b, __u8 family)
{
	const pf_fc_dword *x = (const pf_fc_dword *)a, *y = (const pf_fc_dword *)b;

	if (x[0] != y[0] || x[1] != y[1] || a[4] != b[4]) /* pf_ct4_key */
		return 0;
	return family == PF_FAMILY_V4 ||
	       (a[5] == b[5] && x[3] == y[3] && x[4] == y[4] && a[10] == b[10]);
}

/* Whether e may serve a flow of this family at this revision: filled for
 * both, and younger than PF_FC_TTL_JIFFIES. Its key is the caller's to
 * compare. */
static __always_inline int pf_fc_live(const struct pf_fc_entry *e, __u8 family, __u32 rev)
{
	return e->rev == rev && e->family == family &&
	       (__s64)(bpf_jiffies64() - e->until_jiffies) < 0;
}

/* The verdict e holds for this flow, or -1 when e belongs to another flow,
 * another revision, or is older than PF_FC_TTL_JIFFIES. */
static __always_inline int pf_fc_verdict(const struct pf_fc_entry *e, const union pf_ct_keybuf *kb,
					 __u8 family, __u32 rev)
{
	if (!pf_fc_live(e, family, rev))
		return -1;
	if (!pf_fc_key_eq(e->key, (const __u32 *)kb, family))
		return -1;
	return e->verdict;
}

/* flags: PF_FC_F_SRC_OK when the packet filling it is egress, which the
 * source check let through (it runs before conntrack). */
static __always_inline void pf_fc_fill(struct pf_fc_entry *e, const union pf_ct_keybuf *kb,
				       __u8 family, __u32 rev, int verdict, __u8 flags)
{
	__builtin_memcpy(e->key, kb, sizeof(e->key));
	e->rev = rev;
	e->family = family;
	e->verdict = verdict;
	e->flags = flags;
	e->until_jiffies = bpf_jiffies64() + PF_FC_TTL_JIFFIES;
}

/* A packet's flow as the engine resolves it once, before the source check:
 * its conntrack key, its cache entry (NULL: the packet does not use the
 * cache) and that entry's verdict for it (-1: none). */
struct pf_flow {
	union pf_ct_keybuf key;
	struct pf_fc_entry *fc;
	int cached;
};

/* Step 0 of the decision (engine.h), for a packet parsed OK that is neither
 * a non-first fragment nor an ICMP error: fills f and returns the cached
 * verdict if it may skip everything else, or -1. Not for FIN/RST (conntrack
 * must see them: timeout), nor for a SYN, which opens a flow (spares a new
 * flow a read of a cold entry). An egress packet of a pod with the source
 * check skips it only on an entry marked PF_FC_F_SRC_OK; otherwise f->cached
 * holds the verdict for after the check. */
static __always_inline int pf_fc_serve(__u32 slot, __u8 dir, __u32 rev, __u32 pod_flags,
				       const struct pf_pkt *p, struct pf_flow *f)
{
	pf_ct_key_build(&f->key, slot, dir, p);
	f->cached = -1;
	if (p->fin_rst || p->syn_only)
		return -1;
	f->fc = pf_fc_slot(&f->key, p->family);
	if (!f->fc)
		return -1;
	f->cached = pf_fc_verdict(f->fc, &f->key, p->family, rev);
	if (f->cached >= 0 && dir == PF_DIR_EGRESS && (pod_flags & PF_POD_SRC_CHECK) &&
	    !(f->fc->flags & PF_FC_F_SRC_OK))
		return -1;
	return f->cached;
}

#endif /* PODFENCE_FLOW_CACHE_H */

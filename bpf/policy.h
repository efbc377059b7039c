/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Policy decision for a NEW flow: the two LPM lookups of podfence_abi.h in
 * the pod's own trie. No loop over rules: cost depends on trie depth only.
 */
#ifndef PODFENCE_POLICY_H
#define PODFENCE_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* The pod's trie, NULL when the slot has none (caller fails closed). */
static __always_inline void *pf_policy_trie(__u32 slot)
{
	return bpf_map_lookup_elem(&pf_policy, &slot);
}

/* Does the policy of direction `dir` admit a new flow with `peer` (16 bytes,
 * v4 in the first 4), protocol `proto` and destination port `dport`
 * (network order; 0 for portless packets)? Steps:
 *   1. ADDR lookup of the peer -> port-set id (miss or PF_SET_NONE: deny).
 *      The compiler resolved CIDRs, excepts and rule overlaps into sets.
 *   2. PORT lookup of {set, proto, dport} -> first admitting rule (miss: deny).
 * Both lookups reuse one key; bytes past the key's prefixlen are never
 * compared by the LPM trie, so stale bytes there are harmless. */
static __always_inline int pf_policy_allows(void *trie, __u8 dir, __u8 family, const __u8 *peer,
					    __u8 proto, __u16 dport, __u32 *rule)
{
	struct pf_lpm_key k = {};
	struct pf_lpm_val *v;

	k.prefixlen = PF_LPM_HDR_BITS + (family == PF_FAMILY_V4 ? 32 : 128);
	k.kind = PF_KIND_ADDR;
	k.dir = dir;
	k.family = family;
	__builtin_memcpy(k.data, peer, 16);
	v = bpf_map_lookup_elem(trie, &k);
	if (!v || v->set == PF_SET_NONE)
		return PF_VERDICT_DENY;

	k.prefixlen = PF_LPM_HDR_BITS + 8 + 16;
	k.kind = PF_KIND_PORT;
	k.family = 0;
	k.set = v->set;
	k.data[0] = proto;
	__builtin_memcpy(&k.data[1], &dport, 2); /* already big endian */
	v = bpf_map_lookup_elem(trie, &k);
	if (!v)
		return PF_VERDICT_DENY;
	*rule = v->rule;
	return PF_VERDICT_ALLOW;
}

#endif /* PODFENCE_POLICY_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Policy decision for a NEW flow: the two longest-prefix matches of
 * podfence_abi.h in the pod's own hash map, each a binary search over the
 * prefix lengths present (markers and ropes built by userspace,
 * plugin/policy/length_search.cpp). No loop over rules: at most
 * PF_ROPE_MAX exact lookups per match, whatever the policy.
 */
#ifndef PODFENCE_POLICY_H
#define PODFENCE_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* Top `len` bits of a 32-bit word set, len 0..32, host order. The 64-bit
 * shift avoids the undefined 32-bit shift by 32. */
static __always_inline __u32 pf_top_bits32(__u32 len)
{
	return (__u32)(0xffffffff00000000ull >> len);
}

/* Network-order mask of data word `word` (bits 32 * word ..) for a prefix
 * of `len` bits: clamp(len - 32 * word, 0, 32) bits, the clamp done with
 * sign masks (branch-free: one verifier path whatever the length, and a
 * corrupt length > 128 only makes a key that matches nothing). */
static __always_inline __u32 pf_data_word_mask(__u32 len, __u32 word)
{
	__s64 n = (__s64)len - 32 * word;

	n &= ~(n >> 63);			/* max(n, 0) */
	n = 32 + ((n - 32) & ((n - 32) >> 63)); /* min(n, 32) */
	return bpf_htonl(pf_top_bits32((__u32)n));
}

/* Writes the whole key but prefixlen and data. The key is hashed in full:
 * every byte must be set (no stale stack bytes). */
static __always_inline void pf_key_hdr(struct pf_policy_key *k, __u8 kind, __u8 dir, __u8 family,
				       __u32 set)
{
	k->kind = kind;
	k->dir = dir;
	k->family = family;
	k->pad = 0;
	k->set = set;
}

/* The rope of a table's ROOT entry (PF_ROPE_EMPTY when the table is
 * empty). Leaves k holding the ROOT key. */
static __always_inline __u64 pf_root_rope(void *map, struct pf_policy_key *k, __u8 kind, __u8 dir,
					  __u8 family, __u32 set)
{
	struct pf_policy_val *v;

	k->prefixlen = PF_ROOT_PREFIXLEN;
	pf_key_hdr(k, kind, dir, family, set);
	__builtin_memset(k->data, 0, sizeof(k->data));
	v = bpf_map_lookup_elem(map, k);
	return v ? v->rope : PF_ROPE_EMPTY;
}

/* The binary search over prefix lengths of podfence_abi.h in one table (k's
 * header already set): `d` is the data to match as four network-order
 * words, masked per length tried. Starts from the table's ROOT rope; each
 * hit stores the entry's answer (val.rule for PORT tables, val.set for
 * ADDR) and switches to its rope; the last hit is the longest match. At
 * most PF_ROPE_MAX lookups. Returns the answer, `none` if nothing hit. */
static __always_inline __u32 pf_search(void *map, struct pf_policy_key *k, __u64 rope,
				       const __u32 *d, int port, __u32 none)
{
	struct pf_policy_val *v;
	__u32 *kd = (__u32 *)k->data;
	__u32 answer = none, len;
	int i;

#pragma clang loop unroll(disable)
	for (i = 0; i < PF_ROPE_MAX; i++) {
		len = rope & 0xff;
		if (len == PF_ROPE_END)
			break;
		rope = rope >> 8 | (__u64)PF_ROPE_END << 56;
		k->prefixlen = PF_KEY_HDR_BITS + len;
		kd[0] = d[0] & pf_data_word_mask(len, 0);
		kd[1] = d[1] & pf_data_word_mask(len, 1);
		kd[2] = d[2] & pf_data_word_mask(len, 2);
		kd[3] = d[3] & pf_data_word_mask(len, 3);
		v = bpf_map_lookup_elem(map, k);
		if (v) {
			answer = port ? v->rule : v->set;
			rope = v->rope;
		}
	}
	return answer;
}

/* Step 1: longest ADDR match of the peer `a` (four network-order words, v4:
 * a[1..3] = 0) -> port-set id, PF_SET_NONE when nothing matches. */
static __always_inline __u32 pf_addr_match(void *map, struct pf_policy_key *k, __u8 dir,
					   __u8 family, const __u32 *a)
{
	__u64 rope = pf_root_rope(map, k, PF_KIND_ADDR_ROOT, dir, family, 0);

	k->kind = PF_KIND_ADDR;
	return pf_search(map, k, rope, a, 0, PF_SET_NONE);
}

/* Step 2: longest PORT match of {proto, dport} in port set `set` -> the
 * first admitting rule, or -1. The port-key bits (proto << 16 | port) are
 * the top 24 bits of data word 0. */
static __always_inline long pf_port_match(void *map, struct pf_policy_key *k, __u8 dir, __u32 set,
					  __u8 proto, __u16 dport)
{
	__u32 d[4] = {bpf_htonl((__u32)proto << 24 | (__u32)bpf_ntohs(dport) << 8), 0, 0, 0};
	__u64 rope = pf_root_rope(map, k, PF_KIND_PORT_ROOT, dir, 0, set);
	__u32 rule;

	k->kind = PF_KIND_PORT;
	rule = pf_search(map, k, rope, d, 1, PF_RULE_NONE);
	return rule == PF_RULE_NONE ? -1 : (long)rule;
}

/* A new-flow question, on the caller's stack (a global function takes
 * pointers to sized memory only). */
struct pf_query {
	__u32 slot;
	__u8 dir;
	__u8 family;
	__u8 proto;
	__u8 pad;
	__u32 peer[4]; /* network order, v4 in peer[0] */
	__u16 dport;   /* network order; 0 for portless packets */
	__u16 pad2;
};

/* Does the policy of q->dir admit a new flow with peer q->peer, protocol
 * q->proto and destination port q->dport? Returns the first admitting rule
 * (0..0xffffffff, PF_RULE_DEFAULT when the direction is not isolated) or -1
 * to deny, also when the slot has no policy map (fail closed). Steps:
 *   1. ADDR match of the peer -> port-set id (miss or PF_SET_NONE: deny).
 *      The compiler resolved CIDRs, excepts and rule overlaps into sets.
 *   2. PORT match of {set, proto, dport} -> first admitting rule (miss: deny).
 * Both use one policy map (one outer lookup: a concurrent replacement cannot
 * mix two policies' set ids) and one key, rewritten in full per lookup.
 * A global function: the verifier checks it once, on its own, instead of
 * once per call site with every caller state (inlined, the walks' loops
 * exceeded its 1M instruction budget). */
__noinline long pf_policy_decide(const struct pf_query *q)
{
	struct pf_policy_key k;
	void *map;
	__u32 set;

	if (!q)
		return -1;
	map = bpf_map_lookup_elem(&pf_policy, &q->slot);
	if (!map)
		return -1;
	set = pf_addr_match(map, &k, q->dir, q->family, q->peer);
	if (set == PF_SET_NONE)
		return -1;
	return pf_port_match(map, &k, q->dir, set, q->proto, q->dport);
}

/* Does the policy of direction `dir` admit a new flow with `peer` (16 bytes,
 * v4 in the first 4), protocol `proto` and destination port `dport`
 * (network order; 0 for portless packets)? Sets *rule when it does. */
static __always_inline int pf_policy_allows(__u32 slot, __u8 dir, __u8 family, const __u8 *peer,
					    __u8 proto, __u16 dport, __u32 *rule)
{
	struct pf_query q = {
		.slot = slot,
		.dir = dir,
		.family = family,
		.proto = proto,
		.dport = dport,
	};
	long r;

	__builtin_memcpy(q.peer, peer, 16);
	r = pf_policy_decide(&q);
	if (r < 0)
		return PF_VERDICT_DENY;
	*rule = (__u32)r;
	return PF_VERDICT_ALLOW;
}

/* Audit passes what the policy denies, but not a pod without a policy map
 * (DEL clearing the slot, a broken replace): that still fails closed. Only
 * asked on the would-deny path. */
static __always_inline int pf_policy_present(__u32 slot)
{
	return bpf_map_lookup_elem(&pf_policy, &slot) != NULL;
}

#endif /* PODFENCE_POLICY_H */

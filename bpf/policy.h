/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Policy decision for a NEW flow: the two longest-prefix matches of
 * podfence_abi.h in the pod's own hash map. The match is done here: read the
 * bitmap of prefix lengths present (a LENS entry), then one exact lookup per
 * present length, longest first; the first hit is the longest match. No loop
 * over rules: the cost grows with the number of DISTINCT prefix lengths in
 * the pod's policy (at most 33 or 129 address lengths + 25 port-key lengths),
 * never with the number of rules.
 */
#ifndef PODFENCE_POLICY_H
#define PODFENCE_POLICY_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

/* Valid bits of the LENS words: v4 lengths 0..32; v6 word 2 holds only 128;
 * port-key lengths 0 (any) and 8..24. Anything else is ignored, so a
 * corrupt bitmap cannot make a mask shift out of range. */
#define PF_LENS_V4_BITS	     0x1ffffffffull
#define PF_LENS_V6_LAST_BITS 0x1ull
#define PF_LENS_PORT_BITS    0x1ffff01ull

/* The helpers the walks run per length are branch-free, so each loop
 * iteration is one path for the verifier, not one per length value. */

/* Index of the highest set bit of x != 0: smear it down, count the ones
 * (BPF has no clz). */
static __always_inline __u32 pf_fls64(__u64 x)
{
	x |= x >> 1;
	x |= x >> 2;
	x |= x >> 4;
	x |= x >> 8;
	x |= x >> 16;
	x |= x >> 32;
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (__u32)((x * 0x0101010101010101ull) >> 56) - 1;
}

/* Top `len` bits of a 32-bit word set, len 0..32, host order. The 64-bit
 * shift avoids the undefined 32-bit shift by 32. */
static __always_inline __u32 pf_top_bits32(__u32 len)
{
	return (__u32)(0xffffffff00000000ull >> len);
}

/* Network-order mask of address word `word` (bits 32 * word ..) for a
 * prefix of `len` (0..128) bits: clamp(len - 32 * word, 0, 32) bits, the
 * clamp done with sign masks. */
static __always_inline __u32 pf_addr_word_mask(__u32 len, __u32 word)
{
	__s64 n = (__s64)len - 32 * word;

	n &= ~(n >> 63);			/* max(n, 0) */
	n = 32 + ((n - 32) & ((n - 32) >> 63)); /* min(n, 32) */
	return bpf_htonl(pf_top_bits32((__u32)n));
}

/* Writes the whole key but data, which the caller fills. The key is hashed
 * in full: every byte must be set (no stale stack bytes). */
static __always_inline void pf_key_hdr(struct pf_lpm_key *k, __u8 kind, __u8 dir, __u8 family,
				       __u32 set)
{
	k->kind = kind;
	k->dir = dir;
	k->family = family;
	k->pad = 0;
	k->set = set;
}

static __always_inline void pf_key_data(struct pf_lpm_key *k, __u32 w0, __u32 w1, __u32 w2,
					__u32 w3)
{
	__u32 *d = (__u32 *)k->data;

	d[0] = w0;
	d[1] = w1;
	d[2] = w2;
	d[3] = w3;
}

/* Bitmap of a LENS entry, 0 when absent. Leaves k holding the LENS key. */
static __always_inline __u64 pf_lens(void *map, struct pf_lpm_key *k, __u8 kind, __u8 dir,
				     __u8 family, __u32 set, __u32 prefixlen, __u32 word)
{
	struct pf_lpm_val *v;

	k->prefixlen = prefixlen;
	pf_key_hdr(k, kind, dir, family, set);
	pf_key_data(k, bpf_htonl(word << 24), 0, 0, 0); /* data[0] = word */
	v = bpf_map_lookup_elem(map, k);
	return v ? pf_lens_get(v) : 0;
}

/* ADDR lengths of one LENS word (length = base + bit), longest first: the
 * first hit is the longest match within the word. `a` is the peer address
 * as four network-order words (v4: a[1..3] = 0). Returns 1 and the entry's
 * set in *set on a hit, 0 on a miss at every length. The loop leaves by
 * break, not return, so every hit reaches one join point and the verifier
 * prunes them there. */
static __always_inline int pf_addr_walk(void *map, struct pf_lpm_key *k, __u8 dir, __u8 family,
					const __u32 *a, __u64 lens, __u32 base, int max_bits,
					__u32 *set)
{
	struct pf_lpm_val *v = NULL;
	__u32 bit, len;
	int i;

	pf_key_hdr(k, PF_KIND_ADDR, dir, family, 0);
#pragma clang loop unroll(disable)
	for (i = 0; i < max_bits && lens; i++) {
		bit = pf_fls64(lens);
		lens &= ~(1ull << bit);
		len = base + bit;
		k->prefixlen = PF_LPM_HDR_BITS + len;
		pf_key_data(k, a[0] & pf_addr_word_mask(len, 0), a[1] & pf_addr_word_mask(len, 1),
			    a[2] & pf_addr_word_mask(len, 2), a[3] & pf_addr_word_mask(len, 3));
		v = bpf_map_lookup_elem(map, k);
		if (v)
			break;
	}
	if (!v)
		return 0;
	*set = v->set;
	return 1;
}

/* Step 1: longest ADDR match of the peer -> port-set id (PF_SET_NONE on a
 * miss). v6 walks its LENS words from the longest lengths down, fetching
 * each word only when reached. */
static __always_inline __u32 pf_addr_match(void *map, struct pf_lpm_key *k, __u8 dir, __u8 family,
					   const __u32 *a)
{
	__u32 set = PF_SET_NONE;
	__u64 lens;

	if (family == PF_FAMILY_V4) {
		lens = pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN,
			       0);
		pf_addr_walk(map, k, dir, family, a, lens & PF_LENS_V4_BITS, 0, 33, &set);
		return set;
	}
	lens = pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 2);
	if (pf_addr_walk(map, k, dir, family, a, lens & PF_LENS_V6_LAST_BITS, 128, 1, &set))
		return set;
	lens = pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 1);
	if (pf_addr_walk(map, k, dir, family, a, lens, 64, 64, &set))
		return set;
	lens = pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 0);
	pf_addr_walk(map, k, dir, family, a, lens, 0, 64, &set);
	return set;
}

/* Step 2: longest PORT match of {proto, dport} in port set `set` -> the
 * first admitting rule, or -1 on a miss. The port-key bits
 * (proto << 16 | port) are the top 24 bits of data[0..3] read as one
 * network-order word. */
static __always_inline long pf_port_match(void *map, struct pf_lpm_key *k, __u8 dir, __u32 set,
					  __u8 proto, __u16 dport)
{
	__u64 lens = pf_lens(map, k, PF_KIND_PORT_LENS, dir, 0, set, PF_PORT_LENS_PREFIXLEN, 0) &
		     PF_LENS_PORT_BITS;
	__u32 pk = (__u32)proto << 24 | (__u32)bpf_ntohs(dport) << 8;
	struct pf_lpm_val *v = NULL;
	__u32 len;
	int i;

	pf_key_hdr(k, PF_KIND_PORT, dir, 0, set);
#pragma clang loop unroll(disable)
	for (i = 0; i < PF_PORT_KEY_BITS + 1 && lens; i++) {
		len = pf_fls64(lens);
		lens &= ~(1ull << len);
		k->prefixlen = PF_LPM_HDR_BITS + len;
		pf_key_data(k, bpf_htonl(pk & pf_top_bits32(len)), 0, 0, 0);
		v = bpf_map_lookup_elem(map, k);
		if (v)
			break;
	}
	return v ? (long)v->rule : -1;
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
	struct pf_lpm_key k;
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

#endif /* PODFENCE_POLICY_H */

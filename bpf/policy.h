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
#define PF_LENS_V4_BITS 0x1ffffffffull
#define PF_LENS_V6_LAST_BITS 0x1ull
#define PF_LENS_PORT_BITS 0x1ffff01ull

/* The pod's policy map, NULL when the slot has none (caller fails closed). */
static __always_inline void *pf_policy_trie(__u32 slot)
{
	return bpf_map_lookup_elem(&pf_policy, &slot);
}

/* Index of the highest set bit of x != 0. Binary search: BPF has no clz. */
static __always_inline __u32 pf_fls64(__u64 x)
{
	__u32 r = 0;

	if (x >> 32) {
		x >>= 32;
		r += 32;
	}
	if (x >> 16) {
		x >>= 16;
		r += 16;
	}
	if (x >> 8) {
		x >>= 8;
		r += 8;
	}
	if (x >> 4) {
		x >>= 4;
		r += 4;
	}
	if (x >> 2) {
		x >>= 2;
		r += 2;
	}
	if (x >> 1)
		r += 1;
	return r;
}

/* Top `len` bits of a 32-bit word set, len 0..32, host order. The 64-bit
 * shift avoids the undefined 32-bit shift by 32. */
static __always_inline __u32 pf_top_bits32(__u32 len)
{
	return (__u32)(0xffffffff00000000ull >> len);
}

/* Network-order mask of address word `word` (bits 32 * word ..) for a
 * prefix of `len` bits. */
static __always_inline __u32 pf_addr_word_mask(__u32 len, __u32 word)
{
	__u32 base = 32 * word;
	__u32 n = len > base ? len - base : 0;

	if (n > 32)
		n = 32;
	return bpf_htonl(pf_top_bits32(n));
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
 * as four network-order words (v4: a[1..3] = 0). */
static __always_inline struct pf_lpm_val *pf_addr_walk(void *map, struct pf_lpm_key *k, __u8 dir,
						       __u8 family, const __u32 *a, __u64 lens,
						       __u32 base, int max_bits)
{
	struct pf_lpm_val *v;
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
			return v;
	}
	return NULL;
}

/* Step 1: longest ADDR match of the peer. v6 walks its LENS words from the
 * longest lengths down, fetching each word only when reached. */
static __always_inline struct pf_lpm_val *pf_addr_match(void *map, struct pf_lpm_key *k, __u8 dir,
							__u8 family, const __u8 *peer)
{
	struct pf_lpm_val *v;
	__u32 a[4];

	__builtin_memcpy(a, peer, 16);
	if (family == PF_FAMILY_V4) {
		__u64 lens = pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0,
				     PF_ADDR_LENS_PREFIXLEN, 0);

		return pf_addr_walk(map, k, dir, family, a, lens & PF_LENS_V4_BITS, 0, 33);
	}
	v = pf_addr_walk(map, k, dir, family, a,
			 pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 2) &
				 PF_LENS_V6_LAST_BITS,
			 128, 1);
	if (v)
		return v;
	v = pf_addr_walk(map, k, dir, family, a,
			 pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 1),
			 64, 64);
	if (v)
		return v;
	return pf_addr_walk(map, k, dir, family, a,
			    pf_lens(map, k, PF_KIND_ADDR_LENS, dir, family, 0, PF_ADDR_LENS_PREFIXLEN, 0),
			    0, 64);
}

/* Step 2: longest PORT match of {proto, dport} in port set `set`. The
 * port-key bits (proto << 16 | port) sit in the top 24 bits of data[0..3]
 * read as one network-order word. */
static __always_inline struct pf_lpm_val *pf_port_match(void *map, struct pf_lpm_key *k, __u8 dir,
							__u32 set, __u8 proto, __u16 dport)
{
	__u64 lens = pf_lens(map, k, PF_KIND_PORT_LENS, dir, 0, set, PF_PORT_LENS_PREFIXLEN, 0) &
		     PF_LENS_PORT_BITS;
	__u32 pk = (__u32)proto << 24 | (__u32)bpf_ntohs(dport) << 8;
	struct pf_lpm_val *v;
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
			return v;
	}
	return NULL;
}

/* Does the policy of direction `dir` admit a new flow with `peer` (16 bytes,
 * v4 in the first 4), protocol `proto` and destination port `dport`
 * (network order; 0 for portless packets)? Steps:
 *   1. ADDR match of the peer -> port-set id (miss or PF_SET_NONE: deny).
 *      The compiler resolved CIDRs, excepts and rule overlaps into sets.
 *   2. PORT match of {set, proto, dport} -> first admitting rule (miss: deny).
 * Both reuse one key, rewritten in full for every lookup. */
static __always_inline int pf_policy_allows(void *trie, __u8 dir, __u8 family, const __u8 *peer,
					    __u8 proto, __u16 dport, __u32 *rule)
{
	struct pf_lpm_key k;
	struct pf_lpm_val *v;

	v = pf_addr_match(trie, &k, dir, family, peer);
	if (!v || v->set == PF_SET_NONE)
		return PF_VERDICT_DENY;
	v = pf_port_match(trie, &k, dir, v->set, proto, dport);
	if (!v)
		return PF_VERDICT_DENY;
	*rule = v->rule;
	return PF_VERDICT_ALLOW;
}

#endif /* PODFENCE_POLICY_H */

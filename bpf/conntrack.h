/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Pod-centric conntrack (pf_conntrack4 for IPv4, pf_conntrack for IPv6; LRU
 * hashes). Both directions of a connection map to one key: (slot, proto,
 * pod addr/port, peer addr/port), and the family in the wide key. Entries
 * are stamped with the pod's policy revision so a policy replacement
 * re-validates flows lazily, at their next packet.
 *
 * Races: entries are read and written in place by several CPUs without
 * locks. The fields are independent words and every interleaving leaves a
 * valid entry (at worst a refresh or the CLOSING flag is lost, which only
 * shortens or lengthens one idle timeout).
 */
#ifndef PODFENCE_CONNTRACK_H
#define PODFENCE_CONNTRACK_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"

/* last_seen is rewritten only when this stale: no map write per packet. */
#define PF_CT_REFRESH_NS 1000000000ull

/* A flow's key in its family's table: the first 20 bytes (pf_ct4_key) for
 * IPv4, all of it for IPv6. Zeroed whole (`= {}` initialises the first
 * member, the larger), so the map calls of either table read initialised
 * bytes on every path the verifier walks. */
union pf_ct_keybuf {
	struct pf_ct_key wide;
	struct pf_ct4_key k4;
} __attribute__((aligned(8))); /* the flow cache reads it in 64-bit words */

static __always_inline void pf_ct_key_init(struct pf_ct_key *k, __u32 slot, __u8 dir,
					   const struct pf_pkt *p)
{
	int to_pod = dir == PF_DIR_INGRESS;

	k->slot = slot;
	k->family = p->family;
	k->proto = p->proto;
	k->pod_port = to_pod ? p->dport : p->sport;
	k->peer_port = to_pod ? p->sport : p->dport;
	k->pad = 0;
	__builtin_memcpy(k->pod_addr, to_pod ? p->dst : p->src, 16);
	__builtin_memcpy(k->peer_addr, to_pod ? p->src : p->dst, 16);
}

static __always_inline void pf_ct4_key_init(struct pf_ct4_key *k, __u32 slot, __u8 dir,
					    const struct pf_pkt *p)
{
	int to_pod = dir == PF_DIR_INGRESS;

	k->slot = slot;
	k->proto = p->proto;
	k->pod_port = to_pod ? p->dport : p->sport;
	k->peer_port = to_pod ? p->sport : p->dport;
	__builtin_memcpy(k->pod_addr, to_pod ? p->dst : p->src, 4);
	__builtin_memcpy(k->peer_addr, to_pod ? p->src : p->dst, 4);
}

/* The peer's address of packet p seen in direction dir. */
static __always_inline const __u8 *pf_peer_addr(const struct pf_pkt *p, __u8 dir)
{
	return dir == PF_DIR_INGRESS ? p->src : p->dst;
}

/* Destination port of the flow's ORIGIN direction as policy sees it, for
 * packet p seen in direction dir: ingress flows target the pod's port,
 * egress flows the peer's. Portless protocols (and ICMP echo, whose ports
 * hold the identifier) use port 0. */
static __always_inline __u16 pf_flow_origin_dport(const struct pf_pkt *p, __u8 dir, __u8 origin)
{
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != PF_IPPROTO_SCTP)
		return 0;
	/* The pod's port is the destination of what goes to it. */
	return (origin == PF_DIR_INGRESS) == (dir == PF_DIR_INGRESS) ? p->dport : p->sport;
}

/* An IPv4 flow that a datapath before ABI 6 recorded in the wide table, for
 * a pod moved from it: copied into pf_conntrack4 (kept there too, where
 * the old datapath may still read it while the pod's stubs are swapped;
 * LRU ages it out). Only while pf_config says such flows may be left, so
 * new flows pay the second lookup only for an idle timeout after a move. */
static __always_inline struct pf_ct_val *pf_ct4_adopt(const struct pf_ct4_key *k4, __u32 slot,
						      __u8 dir, const struct pf_pkt *p, __u64 now)
{
	struct pf_config *cfg;
	struct pf_ct_key wide;
	struct pf_ct_val *old, v;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&pf_config, &zero);
	if (!cfg || (__s64)(now - cfg->wide_v4_until_ns) >= 0)
		return NULL;
	pf_ct_key_init(&wide, slot, dir, p);
	old = bpf_map_lookup_elem(&pf_conntrack, &wide);
	if (!old)
		return NULL;
	v = *old;
	bpf_map_update_elem(&pf_conntrack4, k4, &v, BPF_NOEXIST);
	return bpf_map_lookup_elem(&pf_conntrack4, k4) ?: old; /* a full table: the old one */
}

/* p's flow key (pod `slot`, direction dir) in its family's layout, kept in
 * kb for the flow cache, pf_ct_lookup, pf_ct_create and pf_ct_delete. */
static __always_inline void pf_ct_key_build(union pf_ct_keybuf *kb, __u32 slot, __u8 dir,
					    const struct pf_pkt *p)
{
	if (p->family == PF_FAMILY_V4)
		pf_ct4_key_init(&kb->k4, slot, dir, p);
	else
		pf_ct_key_init(&kb->wide, slot, dir, p);
}

/* The live or expired entry of kb's flow. */
static __always_inline struct pf_ct_val *pf_ct_lookup(const union pf_ct_keybuf *kb, __u32 slot,
						      __u8 dir, const struct pf_pkt *p, __u64 now)
{
	struct pf_ct_val *ct;

	if (p->family == PF_FAMILY_V4) {
		ct = bpf_map_lookup_elem(&pf_conntrack4, &kb->k4);
		return ct ? ct : pf_ct4_adopt(&kb->k4, slot, dir, p, now);
	}
	return bpf_map_lookup_elem(&pf_conntrack, &kb->wide);
}

static __always_inline void pf_ct_delete(const union pf_ct_keybuf *kb, __u8 family)
{
	if (family == PF_FAMILY_V4)
		bpf_map_delete_elem(&pf_conntrack4, &kb->k4);
	else
		bpf_map_delete_elem(&pf_conntrack, &kb->wide);
}

static __always_inline __u64 pf_ct_timeout(__u8 proto, __u8 flags)
{
	if (proto == IPPROTO_TCP)
		return (flags & PF_CT_F_CLOSING) ? PF_CT_TIMEOUT_TCP_CLOSING : PF_CT_TIMEOUT_TCP;
	if (proto == IPPROTO_UDP)
		return PF_CT_TIMEOUT_UDP;
	return PF_CT_TIMEOUT_OTHER;
}

static __always_inline int pf_ct_expired(const struct pf_ct_val *v, __u8 proto, __u64 now)
{
	/* Signed: another CPU may have stamped a slightly later time. */
	return (__s64)(now - v->last_seen_ns) > (__s64)pf_ct_timeout(proto, v->flags);
}

/* Called for every packet of a tracked flow: keep writes rare. */
static __always_inline void pf_ct_touch(struct pf_ct_val *v, __u64 now, __u8 fin_rst)
{
	if ((__s64)(now - v->last_seen_ns) >= (__s64)PF_CT_REFRESH_NS)
		v->last_seen_ns = now;
	if (fin_rst && !(v->flags & PF_CT_F_CLOSING))
		v->flags |= PF_CT_F_CLOSING;
}

/* Records a flow the policy admitted, or (audit = PF_CT_F_AUDIT) one it
 * denies that passes because the pod audits. A full table (update failure)
 * must never block the flow, so the result is ignored. */
static __always_inline void pf_ct_create(const union pf_ct_keybuf *kb, __u8 family, __u8 origin,
					 __u32 rev, __u64 now, __u8 fin_rst, __u8 audit)
{
	struct pf_ct_val v = {
		.last_seen_ns = now,
		.rev = rev,
		.origin = origin,
		.flags = (fin_rst ? PF_CT_F_CLOSING : 0) | audit,
	};

	if (family == PF_FAMILY_V4)
		bpf_map_update_elem(&pf_conntrack4, &kb->k4, &v, BPF_ANY);
	else
		bpf_map_update_elem(&pf_conntrack, &kb->wide, &v, BPF_ANY);
}

#endif /* PODFENCE_CONNTRACK_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Pod-centric conntrack (pf_conntrack, LRU hash). Both directions of a
 * connection map to one key: (slot, family, proto, pod addr/port, peer
 * addr/port). Entries are stamped with the pod's policy revision so a policy
 * replacement re-validates flows lazily, at their next packet.
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

/* Destination port of the flow's ORIGIN direction as policy sees it:
 * ingress flows target the pod's port, egress flows the peer's. Portless
 * protocols (and ICMP echo, whose ports hold the identifier) use port 0. */
static __always_inline __u16 pf_ct_origin_dport(const struct pf_ct_key *k, __u8 origin)
{
	if (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP && k->proto != PF_IPPROTO_SCTP)
		return 0;
	return origin == PF_DIR_INGRESS ? k->pod_port : k->peer_port;
}

/* Records a flow the policy admitted, or (audit = PF_CT_F_AUDIT) one it
 * denies that passes because the pod audits. A full table (update failure)
 * must never block the flow, so the result is ignored. */
static __always_inline void pf_ct_create(const struct pf_ct_key *k, __u8 origin, __u32 rev,
					 __u64 now, __u8 fin_rst, __u8 audit)
{
	struct pf_ct_val v = {
		.last_seen_ns = now,
		.rev = rev,
		.origin = origin,
		.flags = (fin_rst ? PF_CT_F_CLOSING : 0) | audit,
	};

	bpf_map_update_elem(&pf_conntrack, k, &v, BPF_ANY);
}

#endif /* PODFENCE_CONNTRACK_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The decision sequence shared by every attach point. Entry points parse
 * their context into (data, data_end, len), call pf_engine() and map the
 * verdict to their program type's return code.
 */
#ifndef PODFENCE_ENGINE_H
#define PODFENCE_ENGINE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "counters.h"
#include "flow_cache.h"
#include "frag.h"
#include "icmp_error.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "source_check.h"

/* Destination port the policy sees: 0 for everything without ports. */
static __always_inline __u16 pf_policy_dport(const struct pf_pkt *p)
{
	return p->ported ? p->dport : 0;
}

/* Stateful decision for an IP packet of pod `slot` in direction `dir`, whose
 * flow pf_fc_serve resolved into f (and did not serve alone):
 *   0. Flow cache hit (flow_cache.h; not for TCP SYN/FIN/RST): its verdict, the
 *      one 1a gave this flow under this revision within the last second. Here
 *      only for an egress packet that had to pass the source check first; the
 *      entry is marked so that the flow's next ones need not.
 *   1. Conntrack hit, not expired (then cached, unless SYN/FIN/RST):
 *      a. stamped with the current revision -> ALLOW, or AUDIT for a flow
 *         tracked as would-deny (the short path: no policy lookup, at most
 *         one write per second);
 *      b. older revision -> re-validate as a new flow of the entry's ORIGIN
 *         direction; admitted -> restamp (no longer audited), ALLOW; else
 *         go on to 2.
 *      An expired entry counts as absent (overwritten or deleted below).
 *   2. New flow in direction `dir`: admitted -> record it (a full table still
 *      allows), count a hit for the admitting rule, ALLOW.
 *   3. Denied, pod enforces -> delete a stale entry, DROP.
 *   4. Denied, pod audits (`audit`) -> the same decision, but tracked with
 *      PF_CT_F_AUDIT so the flow is reported once (AUDIT_NEW) and its later
 *      packets pass as AUDIT. A live entry of 1b keeps its origin and is
 *      reported only if it was not audited before. New ones count a hit for
 *      PF_RULE_NONE: no rule admitted them. The mode switch bumps the
 *      revision, so enforce cuts these flows at 1b/3.
 * A missing policy map for an active pod fails closed, also in audit (the
 * policy decision denies; a stale entry is then deleted like any flow the
 * policy refuses). */
static __always_inline int pf_decide(__u32 slot, __u8 dir, __u32 rev, int audit,
				     const struct pf_pkt *p, struct pf_flow *f)
{
	/* Every fill and mark below comes after the source check passed. */
	const __u8 fc_flags = dir == PF_DIR_EGRESS ? PF_FC_F_SRC_OK : 0;
	struct pf_fc_entry *fc = f->fc;
	struct pf_ct_val *ct;
	__u32 rule = PF_RULE_DEFAULT;
	int stale = 0, live = 0, v;
	__u64 now;

	if (fc && f->cached >= 0) {
		fc->flags |= fc_flags;
		return f->cached;
	}
	/* Read only past the cache: a helper call, not inlined. */
	now = bpf_ktime_get_coarse_ns();
	ct = pf_ct_lookup(&f->key, slot, dir, p, now);
	if (ct) {
		if (pf_ct_expired(ct, p->proto, now)) {
			stale = 1;
		} else if (ct->rev == rev) {
			pf_ct_touch(ct, now, p->fin_rst);
			v = (ct->flags & PF_CT_F_AUDIT) ? PF_VERDICT_AUDIT : PF_VERDICT_ALLOW;
			if (fc)
				pf_fc_fill(fc, &f->key, p->family, rev, v, fc_flags);
			return v;
		} else {
			__u8 origin = ct->origin;

			if (pf_policy_allows(slot, origin, p->family, pf_peer_addr(p, dir),
					     p->proto, pf_flow_origin_dport(p, dir, origin),
					     &rule)) {
				ct->rev = rev;
				ct->flags &= ~PF_CT_F_AUDIT;
				pf_ct_touch(ct, now, p->fin_rst);
				if (fc)
					pf_fc_fill(fc, &f->key, p->family, rev, PF_VERDICT_ALLOW,
						   fc_flags);
				return PF_VERDICT_ALLOW;
			}
			stale = 1;
			live = 1;
		}
	}

	if (!pf_policy_allows(slot, dir, p->family, pf_peer_addr(p, dir), p->proto,
			      pf_policy_dport(p), &rule)) {
		if (audit && pf_policy_present(slot)) {
			if (live && ct) { /* ct: for the verifier, live implies it */
				int reported = ct->flags & PF_CT_F_AUDIT;

				ct->rev = rev;
				ct->flags |= PF_CT_F_AUDIT;
				pf_ct_touch(ct, now, p->fin_rst);
				return reported ? PF_VERDICT_AUDIT : PF_VERDICT_AUDIT_NEW;
			}
			pf_ct_create(&f->key, p->family, dir, rev, now, p->fin_rst, PF_CT_F_AUDIT);
			pf_count_rule_hit(slot, dir, PF_RULE_NONE);
			return PF_VERDICT_AUDIT_NEW;
		}
		if (stale)
			pf_ct_delete(&f->key, p->family);
		return PF_VERDICT_DENY;
	}
	pf_ct_create(&f->key, p->family, dir, rev, now, p->fin_rst, 0);
	pf_count_rule_hit(slot, dir, rule);
	return PF_VERDICT_ALLOW;
}

/* Packets that open no flow of their own: non-first fragments (no ports)
 * and ICMP errors. Their datagram's first fragment (frag.h) or the flow
 * they quote (icmp_error.h) admits them (ALLOW), or passes them as
 * would-deny (AUDIT) when that one passed only because the pod audits;
 * otherwise the policy alone judges them as a new flow with port 0 (so
 * they pass where every port of their protocol from that peer would),
 * leaving no conntrack entry. With no flow to remember, an audit pod
 * reports each such would-deny packet, as enforce reports each drop. */
static __always_inline int pf_decide_related(__u32 slot, __u8 dir, __u32 rev, int audit,
					     const struct pf_pkt *p, void *data, void *data_end)
{
	__u32 rule = PF_RULE_DEFAULT;
	int v = p->frag ? pf_frag_admitted(slot, dir, audit, p)
			: pf_icmp_error_related(slot, dir, rev, audit, p, data, data_end);

	if (v != PF_VERDICT_DENY)
		return v;
	if (!pf_policy_allows(slot, dir, p->family, pf_peer_addr(p, dir), p->proto, 0, &rule)) {
		if (!audit || !pf_policy_present(slot))
			return PF_VERDICT_DENY;
		rule = PF_RULE_NONE;
		v = PF_VERDICT_AUDIT_NEW;
	} else {
		v = PF_VERDICT_ALLOW;
	}
	pf_count_rule_hit(slot, dir, rule);
	return v;
}

/* What the engine reads and works out once per frame. */
struct pf_frame {
	struct pf_pkt pkt;
	struct pf_flow flow;
	__u32 rev;	 /* the pod's, read once with pod_flags */
	__u32 pod_flags; /* PF_POD_* */
	int rc;		 /* PF_PARSE_* */
};

/* Step 0 for one frame of pod `slot`: reads the pod, parses the frame and
 * asks the flow cache. Returns the cached verdict of an established flow's
 * packet (then only pf_engine_finish is left), -1 when the rest of the
 * engine must decide, or PF_ENGINE_DEAD for an unknown or inactive slot.
 * The per-attachment program (fastpath.bpf.c) serves the common frame's
 * cached packets before this, the same way. */
#define PF_ENGINE_DEAD (-2)

static __always_inline int pf_engine_start(__u32 slot, __u8 dir, void *data, void *data_end,
					   struct pf_frame *fr)
{
	struct pf_pod *pod = bpf_map_lookup_elem(&pf_pods, &slot); /* NULL: slot >= PF_MAX_SLOTS */

	if (!pod || !(pod->flags & PF_POD_ACTIVE))
		return PF_ENGINE_DEAD;
	/* Read once: one (revision, mode) pair decides the packet. A switch
	 * to enforce clears the flag before it bumps rev (policy_store.cpp), so
	 * no packet stamps an audited flow with the new revision. */
	fr->rev = pod->rev;
	fr->pod_flags = pod->flags;
	fr->rc = pf_parse_frame(data, data_end, &fr->pkt);
	/* An established flow's packet, served from the cache, skips all that
	 * follows (the source check too, once it passed for the flow). */
	if (fr->rc != PF_PARSE_OK || fr->pkt.frag || fr->pkt.icmp_err)
		return -1;
	return pf_fc_serve(slot, dir, fr->rev, fr->pod_flags, &fr->pkt, &fr->flow);
}

/* The last steps for every verdict: a passing first fragment's datagram is
 * recorded, the packet counted, a drop or an audited flow reported.
 * Returns PF_VERDICT_ALLOW or PF_VERDICT_DENY, all the entry points see. */
static __always_inline int pf_engine_finish(__u32 slot, __u8 dir, int verdict,
					    const struct pf_frame *fr, __u32 len)
{
	if (fr->rc == PF_PARSE_OK && verdict != PF_VERDICT_DENY && fr->pkt.first_frag)
		pf_frag_record(slot, dir, &fr->pkt, verdict != PF_VERDICT_ALLOW);

	pf_count_packet(slot, dir, verdict, len);
	if (verdict == PF_VERDICT_DENY) {
		pf_emit_drop(slot, dir, &fr->pkt, len);
		return PF_VERDICT_DENY;
	}
	if (verdict == PF_VERDICT_AUDIT_NEW)
		pf_emit_drop_reason(slot, dir, &fr->pkt, len, PF_EVENT_AUDIT);
	return PF_VERDICT_ALLOW; /* AUDIT and AUDIT_NEW pass */
}

/* The whole engine for one frame of the pod its stub named (pf_scratch).
 * Fails closed on anything it cannot attribute or read: no scratch, unknown
 * or inactive slot, bad direction, truncated IP/L4 header. Non-IP frames and
 * ICMPv6 neighbour/router discovery pass without policy or conntrack (but
 * are counted). Before all of that, an egress IP packet from a source the
 * pod does not own is dropped when the pod has the source check on
 * (source_check.h); only a cached flow's packets skip it, from an address
 * that already passed it (PF_FC_F_SRC_OK). */
static __always_inline int pf_engine(void *data, void *data_end, __u32 len)
{
	struct pf_frame fr = {};
	struct pf_scratch *sc;
	__u32 zero = 0, slot, dir;
	int verdict, audit;

	sc = bpf_map_lookup_elem(&pf_scratch, &zero);
	if (!sc)
		return PF_VERDICT_DENY;
	slot = sc->slot;
	dir = sc->dir;
	if (dir >= PF_NUM_DIRS)
		return PF_VERDICT_DENY;
	verdict = pf_engine_start(slot, dir, data, data_end, &fr);
	if (verdict == PF_ENGINE_DEAD)
		return PF_VERDICT_DENY;
	if (verdict < 0) {
		if (pf_source_spoofed(slot, dir, fr.pod_flags, &fr.pkt, len))
			return PF_VERDICT_DENY; /* before ND's pass and the policy; counted apart */
		audit = !!(fr.pod_flags & PF_POD_AUDIT);
		if (fr.rc == PF_PARSE_OK)
			verdict = fr.pkt.frag || fr.pkt.icmp_err
					  ? pf_decide_related(slot, dir, fr.rev, audit, &fr.pkt,
							      data, data_end)
					  : pf_decide(slot, dir, fr.rev, audit, &fr.pkt, &fr.flow);
		else if (fr.rc == PF_PARSE_NOT_IP || fr.rc == PF_PARSE_NEIGH)
			verdict = PF_VERDICT_ALLOW;
		else
			verdict = PF_VERDICT_DENY;
	}
	return pf_engine_finish(slot, dir, verdict, &fr, len);
}

#endif /* PODFENCE_ENGINE_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * ICMP/ICMPv6 errors about a tracked flow (netfilter's RELATED). An error
 * (v4 types 3, 11, 12; v6 types 1-4) quotes the packet it is about: its IP
 * header and at least 8 bytes of L4 (ports, or an echo identifier). That
 * packet travelled the other way: the pod's datagram comes back quoted in
 * an error TO the pod. The error passes when the quoted packet is a packet
 * of a live flow of this pod's conntrack and its pod-side address is the
 * error's pod-side address (conntrack is keyed by slot, so this only pins
 * the orientation: a peer cannot quote the flow's other direction). Read
 * only: an error neither creates nor refreshes an entry. Errors quoting
 * nothing tracked are judged by pf_decide_related() in engine.h.
 */
#ifndef PODFENCE_ICMP_ERROR_H
#define PODFENCE_ICMP_ERROR_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "conntrack.h"
#include "counters.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"

/* Bound on the ICMP header's offset, for the verifier: far past any IP
 * header chain we walk (an error placed beyond it quotes nothing). */
#define PF_QUOTE_OFF_MAX 1024
#define PF_ICMP_ERR_HDR	 8 /* type, code, checksum, 4 bytes unused/MTU/pointer */
#define PF_QUOTED_L4	 8 /* L4 bytes every error quotes (RFC 792, RFC 4443) */

/* The quoted packet as a pf_pkt: addresses, protocol, ports or echo
 * identifier as the conntrack key wants them. 0 when it cannot be read or
 * carries no L4 header (a non-first fragment). IPv6 extension headers are
 * walked with the same bound as the packet's own. */
static __always_inline int pf_quoted_parse(void *pos, void *data_end, __u8 family, struct pf_pkt *q)
{
	struct pf_cursor c = {.pos = pos};
	int rc;

	rc = family == PF_FAMILY_V4 ? pf_parse_ipv4(&c, data_end, q)
				    : pf_parse_ipv6(&c, data_end, q);
	if (rc != PF_PARSE_OK || q->frag || c.pos + PF_QUOTED_L4 > data_end)
		return 0;
	switch (q->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case PF_IPPROTO_SCTP: {
		struct pf_l4_ports *l4 = c.pos;

		q->sport = l4->source;
		q->dport = l4->dest;
		break;
	}
	case IPPROTO_ICMP:
	case PF_IPPROTO_ICMPV6: {
		struct pf_icmp_echo *ic = c.pos;
		int echo = family == PF_FAMILY_V4
				   ? ic->type == PF_ICMP_ECHO || ic->type == PF_ICMP_ECHOREPLY
				   : ic->type == PF_ICMPV6_ECHO_REQUEST ||
					     ic->type == PF_ICMPV6_ECHO_REPLY;

		/* ICMPv4 inside ICMPv6 (and back) is no echo: ports stay 0. */
		if (echo &&
		    q->proto == (family == PF_FAMILY_V4 ? IPPROTO_ICMP : PF_IPPROTO_ICMPV6)) {
			q->sport = ic->id;
			q->dport = ic->id;
		}
		break;
	}
	default:
		break; /* portless: ports 0, as in its conntrack key */
	}
	return 1;
}

static __always_inline int pf_addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/* PF_VERDICT_ALLOW when the ICMP error p (direction dir of pod slot) is
 * about a live flow of the pod, PF_VERDICT_AUDIT when that flow passes only
 * because the pod audits, PF_VERDICT_DENY when it is about nothing this
 * pod may keep. A flow stamped with an older policy revision counts when
 * the current policy still admits it in its origin direction (or the pod
 * audits); the flow's own next packet restamps or cuts it, not the error. */
static __always_inline int pf_icmp_error_related(__u32 slot, __u8 dir, __u32 rev, int audit,
						 const struct pf_pkt *p, void *data, void *data_end)
{
	struct pf_pkt q = {};
	union pf_ct_keybuf key = {};
	struct pf_ct_val *ct;
	__u8 qdir = dir == PF_DIR_INGRESS ? PF_DIR_EGRESS : PF_DIR_INGRESS;
	__u32 off = p->l4_off, rule;
	__u64 now = bpf_ktime_get_coarse_ns();

	if (off > PF_QUOTE_OFF_MAX)
		return 0;
	if (!pf_quoted_parse(data + off + PF_ICMP_ERR_HDR, data_end, p->family, &q))
		return 0;
	/* The quoted packet went the other way: its pod-side address is the
	 * error's. */
	if (!pf_addr_eq(qdir == PF_DIR_INGRESS ? q.dst : q.src,
			dir == PF_DIR_INGRESS ? p->dst : p->src))
		return 0;
	pf_ct_key_build(&key, slot, qdir, &q);
	ct = pf_ct_lookup(&key, slot, qdir, &q, now);
	if (!ct || pf_ct_expired(ct, q.proto, now))
		return PF_VERDICT_DENY;
	/* Same revision: the AUDIT flag is current (switching mode bumps rev). */
	if (ct->rev == rev)
		return (ct->flags & PF_CT_F_AUDIT) ? PF_VERDICT_AUDIT : PF_VERDICT_ALLOW;
	if (pf_policy_allows(slot, ct->origin, q.family, pf_peer_addr(&q, qdir), q.proto,
			     pf_flow_origin_dport(&q, qdir, ct->origin), &rule))
		return PF_VERDICT_ALLOW;
	return audit && pf_policy_present(slot) ? PF_VERDICT_AUDIT : PF_VERDICT_DENY;
}

#endif /* PODFENCE_ICMP_ERROR_H */

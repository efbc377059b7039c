/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Per-pod packet/byte counters, per-rule new-flow hits and drop events. */
#ifndef PODFENCE_COUNTERS_H
#define PODFENCE_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"
#include "parse.h"

/* Verdicts inside the engine, beyond podfence_abi.h's DENY and ALLOW; the
 * entry points only ever see those two (both of these pass). AUDIT: the
 * policy denies but the pod audits; AUDIT_NEW: the same, and the packet is
 * reported (the first of its flow, or a packet with no flow to remember). */
#define PF_VERDICT_AUDIT     2
#define PF_VERDICT_AUDIT_NEW 3

/* Per-CPU values: plain increments, no atomics needed. */
static __always_inline void pf_count_packet(__u32 slot, __u32 dir, int verdict, __u32 len)
{
	__u32 idx = slot * PF_NUM_DIRS + dir;
	struct pf_counter *c = bpf_map_lookup_elem(&pf_counters, &idx);

	if (!c)
		return;
	if (verdict == PF_VERDICT_ALLOW) {
		c->allowed_packets++;
		c->allowed_bytes += len;
	} else if (verdict == PF_VERDICT_DENY) {
		c->denied_packets++;
		c->denied_bytes += len;
	} else {
		c->would_deny_packets++;
		c->would_deny_bytes += len;
	}
}

/* A record the ring buffer had no room for: the verdict stands, the loss
 * is counted so `podfence events` readers know they missed some. */
static __always_inline void pf_count_event_lost(__u32 slot, __u32 dir)
{
	__u32 idx = slot * PF_NUM_DIRS + dir;
	struct pf_counter *c = bpf_map_lookup_elem(&pf_counters, &idx);

	if (c)
		c->events_lost++;
}

/* One more NEW flow admitted by `rule`: lookup, else insert 1. */
static __always_inline void pf_count_rule_hit(__u32 slot, __u32 dir, __u32 rule)
{
	struct pf_rule_key k = {.slot = slot, .dir = dir, .rule = rule};
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&pf_rule_hits, &k);
	if (v) {
		*v += 1;
		return;
	}
	if (bpf_map_update_elem(&pf_rule_hits, &k, &one, BPF_NOEXIST) == 0)
		return;
	/* Lost an insert race with another CPU: count in the winner's entry. */
	v = bpf_map_lookup_elem(&pf_rule_hits, &k);
	if (v)
		*v += 1;
}

/* Drop (or audit) event, only while events are switched on (one array
 * lookup otherwise). A full ring loses the event, never the verdict. */
static __always_inline void pf_emit_drop_reason(__u32 slot, __u32 dir, const struct pf_pkt *p,
						__u32 len, __u8 reason)
{
	__u32 zero = 0;
	struct pf_config *cfg = bpf_map_lookup_elem(&pf_config, &zero);
	struct pf_event *e;

	if (!cfg || !(cfg->flags & PF_CFG_EVENTS))
		return;
	e = bpf_ringbuf_reserve(&pf_events, sizeof(*e), 0);
	if (!e) {
		pf_count_event_lost(slot, dir);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns(); /* CLOCK_MONOTONIC */
	e->slot = slot;
	e->dir = dir;
	e->family = p->family;
	e->proto = p->proto;
	e->reason = reason;
	__builtin_memcpy(e->src, p->src, 16);
	__builtin_memcpy(e->dst, p->dst, 16);
	e->sport = p->sport;
	e->dport = p->dport;
	e->len = len;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void pf_emit_drop(__u32 slot, __u32 dir, const struct pf_pkt *p, __u32 len)
{
	pf_emit_drop_reason(slot, dir, p, len, PF_DROP_POLICY);
}

#endif /* PODFENCE_COUNTERS_H */

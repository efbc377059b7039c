/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-attachment program: loaded once per hook of a pod with its slot and
 * direction as constants (pf_fast_slot, pf_fast_dir, set before load). It
 * serves an established flow's packet from the flow cache itself, the
 * engine's step 0 (engine.h), and hands every other packet to the engine
 * the way the raw stub does (pf_scratch, tail call; drop if that fails).
 * Why not the stub alone: its scratch write and tail call were 8-11 ns of an
 * established packet's 60 (bench/README.md). Why not the whole engine per
 * attachment: its verification takes tens of ms per load.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "engine.h"

#ifndef TCX_NEXT
#define TCX_NEXT -1 /* as in podfence.bpf.c */
#endif

const volatile __u32 pf_fast_slot = PF_MAX_SLOTS; /* no pod until set */
const volatile __u32 pf_fast_dir = PF_NUM_DIRS;

/* 1: served, pass; 0: hand the packet to the engine. */
static __always_inline int pf_fast_served(void *data, void *data_end, __u32 len)
{
	struct pf_frame fr = {};
	__u32 slot = pf_fast_slot;
	__u8 dir = pf_fast_dir;
	int verdict;

	if (pf_fast_dir >= PF_NUM_DIRS)
		return 0; /* the engine refuses it */
	verdict = pf_engine_start(slot, dir, data, data_end, &fr, 1);
	/* The cache holds only these two verdicts (engine.h, pf_decide), and
	 * the common frame is never a fragment: of pf_engine_finish only the
	 * count applies. Calling all of it made the verifier, which runs at
	 * every ADD, also walk its drop reports and fragment record (1,201
	 * instructions walked instead of 696 on tc). Anything else, which the
	 * engine never caches, is the engine's to decide and count. */
	if (verdict != PF_VERDICT_ALLOW && verdict != PF_VERDICT_AUDIT)
		return 0;
	pf_count_packet(slot, dir, verdict, len);
	return 1;
}

/* What the raw stub does (plugin/bpf/stub.cpp). */
static __always_inline void pf_fast_hand_over(void *ctx, void *engine)
{
	__u32 zero = 0;
	struct pf_scratch *sc = bpf_map_lookup_elem(&pf_scratch, &zero);

	if (!sc)
		return;
	sc->slot = pf_fast_slot;
	sc->dir = pf_fast_dir;
	bpf_tail_call(ctx, engine, 0);
}

SEC("tc")
int pf_stub_tc(struct __sk_buff *skb)
{
	/* The linear area as the engine would see it: a packet whose headers
	 * are not all there goes to the engine, which pulls them. */
	if (pf_fast_served((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len))
		return TCX_NEXT;
	pf_fast_hand_over(skb, &pf_tc_engine);
	return TC_ACT_SHOT;
}

SEC("xdp")
int pf_stub_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (pf_fast_served(data, data_end, data_end - data))
		return XDP_PASS;
	pf_fast_hand_over(ctx, &pf_xdp_engine);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * podfence datapath: the engine programs the per-attachment stubs tail-call
 * (see pf_scratch in podfence_abi.h). Entry points only turn their context
 * into (data, data_end, length) and the engine's verdict into a return code.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "engine.h"

/* tcx "continue with the next program" (TC_ACT_UNSPEC). Not in the 6.1 uapi
 * headers. Allowing must not end the chain: a later program (bandwidth
 * plugin, legacy filters) still has to run. */
#ifndef TCX_NEXT
#define TCX_NEXT -1
#endif

/* Headers a TC packet must have in its linear area before parsing: enough
 * for Ethernet + IPv6 + a few extension headers + L4 ports. */
#define PF_TC_PULL_LEN 256

SEC("tc")
int pf_tc(struct __sk_buff *skb)
{
	__u32 linear = skb->data_end - skb->data;

	/* Rare (GSO or paged skbs): headers not all in the linear area. Pull
	 * them rather than fail closed on a packet that is merely fragmented in
	 * memory. */
	if (linear < skb->len && linear < PF_TC_PULL_LEN)
		bpf_skb_pull_data(skb, skb->len < PF_TC_PULL_LEN ? skb->len : PF_TC_PULL_LEN);

	return pf_engine((void *)(long)skb->data, (void *)(long)skb->data_end, skb->len) ==
			       PF_VERDICT_ALLOW
		       ? TCX_NEXT
		       : TC_ACT_SHOT;
}

SEC("xdp")
int pf_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return pf_engine(data, data_end, data_end - data) == PF_VERDICT_ALLOW ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

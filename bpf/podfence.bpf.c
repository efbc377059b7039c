/* SPDX-License-Identifier: GPL-2.0 */
/* PLACEHOLDER until the engine lands: entry points deny everything. The
 * datapath owner replaces this file. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "maps.h"

SEC("tc")
int pf_tc(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

SEC("xdp")
int pf_xdp(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

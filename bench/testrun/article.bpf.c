/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Baseline for the benchmark: the seed article's filter, one hash lookup on
 * the TCP/UDP destination port of an IPv4 packet (no conntrack, no CIDRs,
 * replies not handled). Written here only to have a number to compare with.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 131072);
    __type(key, __u16);
    __type(value, __u8);
} article_ports SEC(".maps");

/* 1 allow, 0 deny. */
static __always_inline int article_allows(void* data, void* data_end) {
    struct ethhdr* eth = data;
    struct iphdr* ip = (void*)(eth + 1);
    __u16* ports;
    __u16 dport;

    if ((void*)(ip + 1) > data_end) return 1;
    if (eth->h_proto != bpf_htons(ETH_P_IP)) return 1;
    if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return 1;
    ports = (void*)ip + ip->ihl * 4;
    if ((void*)(ports + 2) > data_end) return 0;
    dport = bpf_ntohs(ports[1]);
    return bpf_map_lookup_elem(&article_ports, &dport) != NULL;
}

SEC("tc")
int article_tc(struct __sk_buff* skb) {
    return article_allows((void*)(long)skb->data, (void*)(long)skb->data_end) ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("xdp")
int article_xdp(struct xdp_md* ctx) {
    return article_allows((void*)(long)ctx->data, (void*)(long)ctx->data_end) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

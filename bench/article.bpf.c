// SPDX-License-Identifier: GPL-2.0
/*
 * The seed article's stateless policy, rewritten for comparison only: allow a
 * TCP/IPv4 packet iff its destination port is a key of port_map, pass
 * everything else that is not TCP/IPv4, count drops. One parser shared by the
 * TC and XDP entry points. The article's per-packet bpf_printk is left out on
 * purpose: it would measure the trace buffer, not the policy lookup.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u16);
    __type(value, __u8);
} port_map SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} drop_count SEC(".maps");

enum verdict { V_PASS, V_DROP };

/* Returns the TCP header of a TCP/IPv4 frame, or NULL for anything else. */
static __always_inline struct tcphdr* parse_tcp4(void* cursor, void* data_end) {
    struct ethhdr* eth = cursor;
    struct iphdr* ip;
    struct tcphdr* tcp;

    if ((void*)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) return NULL;
    ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP) return NULL;
    /* Like the article: assumes no IP options. */
    tcp = (void*)(ip + 1);
    if ((void*)(tcp + 1) > data_end) return NULL;
    return tcp;
}

static __always_inline void count_drop(void) {
    __u32 zero = 0;
    __u64* n = bpf_map_lookup_elem(&drop_count, &zero);

    if (n) __sync_fetch_and_add(n, 1);
}

static __always_inline enum verdict decide(void* data, void* data_end) {
    struct tcphdr* tcp = parse_tcp4(data, data_end);
    __u16 dport;

    if (!tcp) return V_PASS;
    dport = bpf_ntohs(tcp->dest);
    if (bpf_map_lookup_elem(&port_map, &dport)) return V_PASS;
    count_drop();
    return V_DROP;
}

SEC("tc")
int article_tc(struct __sk_buff* skb) {
    void* data = (void*)(long)skb->data;
    void* data_end = (void*)(long)skb->data_end;

    return decide(data, data_end) == V_PASS ? TC_ACT_OK : TC_ACT_SHOT;
}

SEC("xdp")
int article_xdp(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;

    return decide(data, data_end) == V_PASS ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

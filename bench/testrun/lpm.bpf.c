/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Baseline for the benchmark: the structure the policy issue suggested, the
 * kernel's LPM trie, used as simply as possible: one trie lookup of the
 * source address (IPv4 or IPv6) giving the one TCP/UDP port its rule
 * allows. Stateless, no port ranges, no conntrack: only to see how a trie
 * lookup's cost moves with the number of prefixes. The trie of the rule
 * set under test is picked from an array of tries by lpm_slot (set from
 * userspace through the skeleton's .bss).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct lpm_key4 {
    __u32 prefixlen;
    __u8 addr[4];
};

struct lpm_key6 {
    __u32 prefixlen;
    __u8 addr[16];
};

struct lpm_trie4 {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(struct lpm_key4));
    __uint(value_size, sizeof(__u32));
};

struct lpm_trie6 {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(struct lpm_key6));
    __uint(value_size, sizeof(__u32));
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 64);
    __type(key, __u32);
    __array(values, struct lpm_trie4);
} lpm_v4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 64);
    __type(key, __u32);
    __array(values, struct lpm_trie6);
} lpm_v6 SEC(".maps");

__u32 lpm_slot;

/* Destination port (host order) of the TCP/UDP header at l4, 0 if none. */
static __always_inline __u32 lpm_dport(void* l4, void* data_end, __u8 proto) {
    __u16* ports = l4;

    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return 0;
    if ((void*)(ports + 2) > data_end) return 0;
    return bpf_ntohs(ports[1]);
}

/* 1 allow, 0 deny. */
static __always_inline int lpm_allows(void* data, void* data_end) {
    struct ethhdr* eth = data;
    __u32 *port, slot = lpm_slot;
    void* trie;

    if ((void*)(eth + 1) > data_end) return 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = (void*)(eth + 1);
        struct lpm_key4 k = {.prefixlen = 32};

        if ((void*)(ip + 1) > data_end) return 0;
        __builtin_memcpy(k.addr, &ip->saddr, 4);
        trie = bpf_map_lookup_elem(&lpm_v4, &slot);
        port = trie ? bpf_map_lookup_elem(trie, &k) : NULL;
        return port && *port == lpm_dport((void*)ip + ip->ihl * 4, data_end, ip->protocol);
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (void*)(eth + 1);
        struct lpm_key6 k = {.prefixlen = 128};

        if ((void*)(ip6 + 1) > data_end) return 0;
        __builtin_memcpy(k.addr, &ip6->saddr, 16);
        trie = bpf_map_lookup_elem(&lpm_v6, &slot);
        port = trie ? bpf_map_lookup_elem(trie, &k) : NULL;
        return port && *port == lpm_dport(ip6 + 1, data_end, ip6->nexthdr);
    }
    return 1;
}

SEC("tc")
int lpm_tc(struct __sk_buff* skb) {
    return lpm_allows((void*)(long)skb->data, (void*)(long)skb->data_end) ? TC_ACT_OK : TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The per-attachment program: loaded once per hook of a pod with its slot and
 * direction as constants (pf_fast_slot, pf_fast_dir, set before load). It
 * serves an established flow's packet from the flow cache itself, as the
 * engine's step 0 would (engine.h), and hands every other packet to the
 * engine the way the raw stub does (pf_scratch, tail call; drop if that
 * fails). Why not the stub alone: its scratch write and tail call were 8-11
 * ns of an established packet's 60 (bench/README.md). Why not the whole
 * engine per attachment: its verification takes tens of ms per load, and
 * this program's runs at every ADD.
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

/*
 * A cached packet's path, written for the common frame alone (Ethernet,
 * IPv4 without options or IPv6 without extension headers, TCP/UDP/SCTP,
 * not a fragment) and straight from the packet: the flow's key words are
 * composed in registers, hashed (pf_fc_index_of) and compared with the
 * entry's, with no parse into a frame and no key on the stack. Through the
 * engine's parse and key build, the XDP program had 78 stack stores and 48
 * stack loads among 423 instructions, now 24 and 23 among 388 (bpftool prog
 * dump xlated); a cached packet took 23 ns in test_run, now 10. Any other
 * frame, and any packet the cache cannot serve, is the engine's, which
 * decides it as if this path did not exist: this path only ever serves what
 * the engine's step 0 (pf_fc_serve) would serve, with its verdict and count.
 */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the key words below are composed in little-endian byte order"
#endif
_Static_assert(__builtin_offsetof(struct pf_ct4_key, proto) == 4 &&
		       __builtin_offsetof(struct pf_ct4_key, pod_port) == 6 &&
		       __builtin_offsetof(struct pf_ct4_key, peer_port) == 8 &&
		       __builtin_offsetof(struct pf_ct4_key, pod_addr) == 12 &&
		       __builtin_offsetof(struct pf_ct4_key, peer_addr) == 16,
	       "pf_fast_v4 composes pf_ct4_key's words");
_Static_assert(__builtin_offsetof(struct pf_ct_key, family) == 4 &&
		       __builtin_offsetof(struct pf_ct_key, proto) == 5 &&
		       __builtin_offsetof(struct pf_ct_key, pod_port) == 6 &&
		       __builtin_offsetof(struct pf_ct_key, peer_port) == 8 &&
		       __builtin_offsetof(struct pf_ct_key, pod_addr) == 12 &&
		       __builtin_offsetof(struct pf_ct_key, peer_addr) == 28,
	       "pf_fast_v6 composes pf_ct_key's words");

#define PF_TCP_FIN 0x01
#define PF_TCP_SYN 0x02
#define PF_TCP_RST 0x04
#define PF_TCP_ACK 0x10

/* Whether the L4 header of proto at l4 is whole (as pf_parse_ports asks)
 * and its packet one the cache serves: not a TCP FIN or RST, nor a SYN
 * without ACK (pf_fc_serve). */
static __always_inline int pf_fast_l4_ok(__u8 proto, void *l4, void *data_end)
{
	__u8 flags;

	if (proto == IPPROTO_UDP)
		return l4 + sizeof(struct udphdr) <= data_end;
	if (proto == PF_IPPROTO_SCTP)
		return l4 + 12 <= data_end;
	if (proto != IPPROTO_TCP || l4 + sizeof(struct tcphdr) > data_end)
		return 0;
	flags = *(__u8 *)(l4 + 13);
	return !(flags & (PF_TCP_FIN | PF_TCP_RST)) &&
	       (flags & (PF_TCP_SYN | PF_TCP_ACK)) != PF_TCP_SYN;
}

/* The end of a served packet: e's verdict, if it is one the engine caches
 * (ALLOW or AUDIT, pf_decide) and, for a pod's own packet under the source
 * check, if an earlier one of the flow passed it; counted as the engine
 * would. 1: served. */
static __always_inline int pf_fast_finish(const struct pf_fc_entry *e, __u32 slot, __u8 dir,
					  __u32 pod_flags, __u32 len)
{
	int verdict = e->verdict;

	if (verdict != PF_VERDICT_ALLOW && verdict != PF_VERDICT_AUDIT)
		return 0;
	if (dir == PF_DIR_EGRESS && (pod_flags & PF_POD_SRC_CHECK) && !(e->flags & PF_FC_F_SRC_OK))
		return 0;
	pf_count_packet(slot, dir, verdict, len);
	return 1;
}

/* IPv4 at data + ETH_HLEN: pf_ct4_key's words are slot, proto | pod port <<
 * 16, peer port, pod address, peer address. The ports are read as one word,
 * the source port in its low half. */
static __always_inline int pf_fast_v4(void *data, void *data_end, __u32 slot, __u8 dir, __u32 rev,
				      __u32 pod_flags, __u32 len)
{
	void *l4 = data + ETH_HLEN + sizeof(struct iphdr);
	__u32 ports, src, dst, pod, peer, w1, w2;
	struct pf_fc_entry *e;
	__u32 idx;
	__u8 proto;

	if (l4 > data_end)
		return 0;
	/* Version 4 with no options, neither a fragment nor a first one. */
	if (*(__u8 *)(data + ETH_HLEN) != 0x45 ||
	    (*(__u16 *)(data + ETH_HLEN + 6) & bpf_htons(0x3fff)))
		return 0;
	proto = *(__u8 *)(data + ETH_HLEN + 9);
	if (!pf_fast_l4_ok(proto, l4, data_end))
		return 0;
	ports = *(__u32 *)l4;
	src = *(__u32 *)(data + ETH_HLEN + 12);
	dst = *(__u32 *)(data + ETH_HLEN + 16);
	if (dir == PF_DIR_INGRESS) { /* the pod is the destination */
		pod = dst;
		peer = src;
		w1 = proto | (ports & 0xffff0000u);
		w2 = ports & 0xffffu;
	} else {
		pod = src;
		peer = dst;
		w1 = proto | (ports << 16);
		w2 = ports >> 16;
	}
	idx = pf_fc_index_of(slot, w1, w2, pod, peer, 0);
	e = bpf_map_lookup_elem(&pf_flowcache, &idx);
	if (!e || !pf_fc_live(e, PF_FAMILY_V4, rev))
		return 0;
	if (*(__u64 *)&e->key[0] != ((__u64)w1 << 32 | slot) ||
	    *(__u64 *)&e->key[2] != ((__u64)pod << 32 | w2) || e->key[4] != peer)
		return 0;
	return pf_fast_finish(e, slot, dir, pod_flags, len);
}

/* IPv6 at data + ETH_HLEN: pf_ct_key's words are slot, family | proto << 8
 * | pod port << 16, peer port, then the pod's address and the peer's, each
 * compared as two unaligned 64-bit loads of the entry (key bytes 12-27 and
 * 28-43). */
static __always_inline int pf_fast_v6(void *data, void *data_end, __u32 slot, __u8 dir, __u32 rev,
				      __u32 pod_flags, __u32 len)
{
	void *l4 = data + ETH_HLEN + sizeof(struct ipv6hdr);
	void *src = data + ETH_HLEN + 8, *dst = data + ETH_HLEN + 24;
	__u64 pod0, pod1, peer0, peer1;
	__u32 ports, w1, w2, idx;
	struct pf_fc_entry *e;
	void *k;
	__u8 proto;

	if (l4 > data_end)
		return 0;
	if ((*(__u8 *)(data + ETH_HLEN) & 0xf0) != 0x60)
		return 0;
	proto = *(__u8 *)(data + ETH_HLEN + 6); /* next header: no extension headers here */
	if (!pf_fast_l4_ok(proto, l4, data_end))
		return 0;
	ports = *(__u32 *)l4;
	if (dir == PF_DIR_INGRESS) {
		pod0 = *(__u64 *)dst;
		pod1 = *(__u64 *)(dst + 8);
		peer0 = *(__u64 *)src;
		peer1 = *(__u64 *)(src + 8);
		w1 = PF_FAMILY_V6 | proto << 8 | (ports & 0xffff0000u);
		w2 = ports & 0xffffu;
	} else {
		pod0 = *(__u64 *)src;
		pod1 = *(__u64 *)(src + 8);
		peer0 = *(__u64 *)dst;
		peer1 = *(__u64 *)(dst + 8);
		w1 = PF_FAMILY_V6 | proto << 8 | (ports << 16);
		w2 = ports >> 16;
	}
	/* Key words 6, 10, 8 and 9: the high halves of pod1, peer1, peer0, and
	 * the low half of peer1. */
	idx = pf_fc_index_of(slot, w1, w2, pod1 >> 32, peer1 >> 32, (peer0 >> 32) ^ (__u32)peer1);
	e = bpf_map_lookup_elem(&pf_flowcache, &idx);
	if (!e || !pf_fc_live(e, PF_FAMILY_V6, rev))
		return 0;
	k = e->key;
	if (*(__u64 *)k != ((__u64)w1 << 32 | slot) || e->key[2] != w2 ||
	    *(__u64 *)(k + 12) != pod0 || *(__u64 *)(k + 20) != pod1 ||
	    *(__u64 *)(k + 28) != peer0 || *(__u64 *)(k + 36) != peer1)
		return 0;
	return pf_fast_finish(e, slot, dir, pod_flags, len);
}

/* 1: served, pass; 0: hand the packet to the engine. */
static __always_inline int pf_fast_served(void *data, void *data_end, __u32 len)
{
	__u32 slot = pf_fast_slot;
	__u8 dir = pf_fast_dir;
	struct pf_pod *pod;
	__u32 rev, pod_flags;
	__u16 h_proto;

	if (pf_fast_dir >= PF_NUM_DIRS)
		return 0; /* the engine refuses it */
	pod = bpf_map_lookup_elem(&pf_pods, &slot);
	if (!pod)
		return 0;
	/* Read once, as the engine does (pf_engine_start). */
	rev = pod->rev;
	pod_flags = pod->flags;
	if (!(pod_flags & PF_POD_ACTIVE) || data + ETH_HLEN > data_end)
		return 0;
	h_proto = *(__u16 *)(data + 12);
	if (h_proto == bpf_htons(ETH_P_IP))
		return pf_fast_v4(data, data_end, slot, dir, rev, pod_flags, len);
	if (h_proto == bpf_htons(ETH_P_IPV6))
		return pf_fast_v6(data, data_end, slot, dir, rev, pod_flags, len);
	return 0;
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

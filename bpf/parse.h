/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Packet parsing shared by TC and XDP. Every helper takes a cursor and
 * data_end, never the program context, so both program types use the same
 * code. Helpers return PF_PARSE_* and fill struct pf_pkt as far as they got.
 */
#ifndef PODFENCE_PARSE_H
#define PODFENCE_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "podfence_abi.h"

/* Parse outcomes. OK: an IP packet the policy judges. NOT_IP: non-IP frame
 * (ARP, ...). NEIGH: ICMPv6 neighbour/router discovery. Both of these pass
 * without policy or conntrack. BAD: truncated or malformed, dropped. */
#define PF_PARSE_OK	0
#define PF_PARSE_NOT_IP 1
#define PF_PARSE_NEIGH	2
#define PF_PARSE_BAD	3

/* IPv6 extension headers walked before giving up (fail closed). */
#define PF_IPV6_EXT_MAX 6

#define PF_IPPROTO_ICMPV6   58
#define PF_IPPROTO_SCTP	    132
#define PF_IPPROTO_HOPOPTS  0
#define PF_IPPROTO_ROUTING  43
#define PF_IPPROTO_FRAGMENT 44
#define PF_IPPROTO_DSTOPTS  60

#define PF_ICMP_ECHOREPLY      0
#define PF_ICMP_ECHO	       8
#define PF_ICMPV6_ECHO_REQUEST 128
#define PF_ICMPV6_ECHO_REPLY   129
#define PF_ICMPV6_ND_FIRST     133 /* router solicitation */
#define PF_ICMPV6_ND_LAST      137 /* redirect */
/* Errors, which quote the packet they are about. */
#define PF_ICMP_UNREACH	      3
#define PF_ICMP_TIME_EXCEEDED 11
#define PF_ICMP_PARAMETERPROB 12
#define PF_ICMPV6_ERR_FIRST   1 /* destination unreachable */
#define PF_ICMPV6_ERR_LAST    4 /* parameter problem (2: packet too big, 3: time exceeded) */

struct pf_cursor {
	void *pos;
};

/* What the engine needs to know about a packet. Addresses are network
 * order, IPv4 in the first 4 bytes and the rest zero (the conntrack key and
 * the LPM key are built from these bytes as they are). */
struct pf_pkt {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;	 /* network order; ICMP echo: identifier; else 0 */
	__u16 dport;	 /* network order; ICMP echo: identifier; else 0 */
	__u8 family;	 /* PF_FAMILY_*, 0 until the IP header parsed */
	__u8 proto;	 /* IP protocol as on the wire (after v6 extension headers) */
	__u8 ported;	 /* TCP/UDP/SCTP with an L4 header: ports take part in policy */
	__u8 fin_rst;	 /* TCP FIN or RST */
	__u8 frag;	 /* non-first fragment: no L4 header (frag.h) */
	__u8 first_frag; /* offset 0 and more fragments follow (frag.h) */
	__u8 icmp_err;	 /* ICMP/ICMPv6 error: quotes a packet (icmp_error.h) */
	__u8 syn_only;	 /* TCP SYN without ACK: a connection's first packet */
	__u16 l4_off;	 /* bytes from the frame's start to the L4 header */
	__u16 pad2;
	__u32 frag_id; /* IPv4 identification or IPv6 fragment id, as on the wire */
};

/* Minimal on-wire layouts the uapi headers lack or name inconveniently. */
struct pf_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset << 3 | flags */
	__be32 id;
};

struct pf_l4_ports {
	__be16 source;
	__be16 dest;
};

struct pf_icmp_echo {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id;
	__be16 seq;
};

static __always_inline int pf_parse_eth(struct pf_cursor *c, void *data_end, __be16 *h_proto)
{
	struct ethhdr *eth = c->pos;

	if ((void *)(eth + 1) > data_end)
		return PF_PARSE_BAD;
	*h_proto = eth->h_proto;
	c->pos = eth + 1;
	return PF_PARSE_OK;
}

/* IPv4, options skipped via ihl. A non-first fragment sets p->frag so L4
 * parsing is skipped. */
static __always_inline int pf_parse_ipv4(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end)
		return PF_PARSE_BAD;
	if (ip->version != 4)
		return PF_PARSE_BAD;
	hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip) || c->pos + hlen > data_end)
		return PF_PARSE_BAD;

	p->family = PF_FAMILY_V4;
	p->proto = ip->protocol;
	__builtin_memcpy(p->src, &ip->saddr, 4);
	__builtin_memcpy(p->dst, &ip->daddr, 4);

	p->frag = !!(ip->frag_off & bpf_htons(0x1fff));
	p->first_frag = (ip->frag_off & bpf_htons(0x3fff)) == bpf_htons(0x2000); /* MF, offset 0 */
	p->frag_id = ip->id;
	c->pos += hlen;
	return PF_PARSE_OK;
}

static __always_inline int pf_ipv6_is_ext(__u8 proto)
{
	return proto == PF_IPPROTO_HOPOPTS || proto == PF_IPPROTO_ROUTING ||
	       proto == PF_IPPROTO_DSTOPTS || proto == PF_IPPROTO_FRAGMENT;
}

/* One IPv6 extension header at the cursor. Returns 1 when the walk must go
 * on (p->proto updated), 0 when p->proto is the upper-layer protocol (or a
 * non-first fragment's), -PF_PARSE_BAD on truncation. */
static __always_inline int pf_ipv6_ext_step(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	switch (p->proto) {
	case PF_IPPROTO_HOPOPTS:
	case PF_IPPROTO_ROUTING:
	case PF_IPPROTO_DSTOPTS: {
		struct ipv6_opt_hdr *h = c->pos;

		if ((void *)(h + 1) > data_end)
			return -PF_PARSE_BAD;
		p->proto = h->nexthdr;
		c->pos += (h->hdrlen + 1) * 8;
		return 1;
	}
	case PF_IPPROTO_FRAGMENT: {
		struct pf_ipv6_frag *f = c->pos;

		if ((void *)(f + 1) > data_end)
			return -PF_PARSE_BAD;
		p->proto = f->nexthdr;
		p->frag_id = f->id;
		c->pos = f + 1;
		p->first_frag = (f->frag_off & bpf_htons(0xfff9)) == bpf_htons(1); /* M, offset 0 */
		if (f->frag_off & bpf_htons(0xfff8)) {
			p->frag = 1; /* non-first fragment: what follows is payload */
			return 0;
		}
		return 1;
	}
	default:
		return 0;
	}
}

/* The fixed IPv6 header; p->proto is its next header. */
static __always_inline int pf_parse_ipv6_fixed(struct pf_cursor *c, void *data_end,
					       struct pf_pkt *p)
{
	struct ipv6hdr *ip6 = c->pos;

	if ((void *)(ip6 + 1) > data_end)
		return PF_PARSE_BAD;
	if (ip6->version != 6)
		return PF_PARSE_BAD;

	p->family = PF_FAMILY_V6;
	p->proto = ip6->nexthdr;
	__builtin_memcpy(p->src, &ip6->saddr, 16);
	__builtin_memcpy(p->dst, &ip6->daddr, 16);
	c->pos = ip6 + 1;
	return PF_PARSE_OK;
}

/* IPv6 with a bounded walk over hop-by-hop, routing, destination options
 * and fragment headers. More than PF_IPV6_EXT_MAX of them: drop. */
static __always_inline int pf_parse_ipv6(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	int i, rc;

	if (pf_parse_ipv6_fixed(c, data_end, p) != PF_PARSE_OK)
		return PF_PARSE_BAD;

#pragma unroll
	for (i = 0; i < PF_IPV6_EXT_MAX; i++) {
		rc = pf_ipv6_ext_step(c, data_end, p);
		if (rc < 0)
			return PF_PARSE_BAD;
		if (rc == 0)
			return PF_PARSE_OK;
	}
	/* Still on an extension header after the bound: fail closed. */
	return pf_ipv6_is_ext(p->proto) ? PF_PARSE_BAD : PF_PARSE_OK;
}

/* TCP/UDP/SCTP: the ports start every one of these headers. The TCP flags
 * byte is read for conntrack's closing state. */
static __always_inline int pf_parse_ports(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	struct pf_l4_ports *l4 = c->pos;

	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = c->pos;

		if ((void *)(th + 1) > data_end)
			return PF_PARSE_BAD;
		p->fin_rst = th->fin | th->rst;
		p->syn_only = th->syn & !th->ack;
	} else if (p->proto == IPPROTO_UDP) {
		if ((void *)l4 + sizeof(struct udphdr) > data_end)
			return PF_PARSE_BAD;
	} else {
		/* SCTP common header: ports, verification tag, checksum. */
		if ((void *)l4 + 12 > data_end)
			return PF_PARSE_BAD;
	}
	p->sport = l4->source;
	p->dport = l4->dest;
	p->ported = 1;
	return PF_PARSE_OK;
}

/* ICMP / ICMPv6: echo request/reply carry the identifier as both ports;
 * ICMPv6 neighbour and router discovery is reported as PF_PARSE_NEIGH. */
static __always_inline int pf_parse_icmp(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	struct pf_icmp_echo *ic = c->pos;
	__u8 type;

	if ((void *)ic + 4 > data_end) /* type, code, checksum */
		return PF_PARSE_BAD;
	type = ic->type;
	p->icmp_err = p->family == PF_FAMILY_V6
			      ? type >= PF_ICMPV6_ERR_FIRST && type <= PF_ICMPV6_ERR_LAST
			      : type == PF_ICMP_UNREACH || type == PF_ICMP_TIME_EXCEEDED ||
					type == PF_ICMP_PARAMETERPROB;

	if (p->family == PF_FAMILY_V6) {
		if (type >= PF_ICMPV6_ND_FIRST && type <= PF_ICMPV6_ND_LAST)
			return PF_PARSE_NEIGH;
		if (type != PF_ICMPV6_ECHO_REQUEST && type != PF_ICMPV6_ECHO_REPLY)
			return PF_PARSE_OK;
	} else if (type != PF_ICMP_ECHO && type != PF_ICMP_ECHOREPLY) {
		return PF_PARSE_OK;
	}
	if ((void *)(ic + 1) > data_end)
		return PF_PARSE_BAD;
	p->sport = ic->id;
	p->dport = ic->id;
	return PF_PARSE_OK;
}

/* Upper layer at the cursor (nothing to read in a non-first fragment). */
static __always_inline int pf_parse_l4(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	if (p->frag)
		return PF_PARSE_OK;
	switch (p->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case PF_IPPROTO_SCTP:
		return pf_parse_ports(c, data_end, p);
	case IPPROTO_ICMP:
		if (p->family != PF_FAMILY_V4)
			return PF_PARSE_OK;
		return pf_parse_icmp(c, data_end, p);
	case PF_IPPROTO_ICMPV6:
		if (p->family != PF_FAMILY_V6)
			return PF_PARSE_OK;
		return pf_parse_icmp(c, data_end, p);
	default:
		return PF_PARSE_OK; /* portless protocol: port 0 */
	}
}

/* Ethernet and the IP header (with IPv6's extension headers), the cursor
 * left on what follows. */
static __always_inline int pf_parse_l3(struct pf_cursor *c, void *data_end, struct pf_pkt *p)
{
	__be16 h_proto;
	int rc;

	rc = pf_parse_eth(c, data_end, &h_proto);
	if (rc != PF_PARSE_OK)
		return rc;
	if (h_proto == bpf_htons(ETH_P_IP))
		return pf_parse_ipv4(c, data_end, p);
	if (h_proto == bpf_htons(ETH_P_IPV6))
		return pf_parse_ipv6(c, data_end, p);
	return PF_PARSE_NOT_IP;
}

/* Whole frame: Ethernet, IPv4/IPv6, upper layer. */
static __always_inline int pf_parse_frame(void *data, void *data_end, struct pf_pkt *p)
{
	struct pf_cursor c = {.pos = data};
	int rc = pf_parse_l3(&c, data_end, p);

	if (rc != PF_PARSE_OK)
		return rc;
	p->l4_off = c.pos - data;
	return pf_parse_l4(&c, data_end, p);
}

#endif /* PODFENCE_PARSE_H */

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The one contract between the kernel side (bpf/) and userspace (plugin/).
 * Included by the BPF programs and by C++. Plain C, fixed-width types,
 * explicit padding: every struct here is a map key or value, so its bytes
 * are the ABI. Change anything here => bump PF_ABI_VERSION (pf_fc_entry
 * excepted: see there).
 *
 * Naming is from the pod's point of view (like Cilium's to/from_container):
 *   PF_DIR_INGRESS = traffic TO the pod   (host veth tcx egress, XDP on the pod's eth0)
 *   PF_DIR_EGRESS  = traffic FROM the pod (host veth tcx ingress, XDP on the host veth)
 */
#ifndef PODFENCE_ABI_H
#define PODFENCE_ABI_H

#ifdef __cplusplus
#include <cstdint>
typedef std::uint8_t pf_u8;
typedef std::uint16_t pf_u16;
typedef std::uint32_t pf_u32;
typedef std::uint64_t pf_u64;
#else
typedef __u8 pf_u8;
typedef __u16 pf_u16;
typedef __u32 pf_u32;
typedef __u64 pf_u64;
#endif

#ifndef PF_DATAPATH_VARIANT
#define PF_ABI_VERSION 7
#else
/* Test builds only (CMake PODFENCE_DATAPATH_VARIANT): another ABI whose
 * policy value is larger, so the upgrade test moves pods between two real
 * layouts. */
#define PF_ABI_VERSION 1005
#endif

/* ---- sizes --------------------------------------------------------------- */
#define PF_MAX_SLOTS		 4096	 /* attachments (pod interfaces) per node */
#define PF_POLICY_MAX_ENTRIES	 2097152 /* entries per pod policy (compiler's cap) */
#define PF_CT_MAX_ENTRIES	 131072	 /* node-wide LRU conntrack, per table (v4, wide) */
#define PF_RULE_HITS_MAX_ENTRIES 65536
#define PF_EVENTS_RING_BYTES	 (256 * 1024)

/* ---- directions, families, verdicts --------------------------------------- */
#define PF_DIR_INGRESS 0
#define PF_DIR_EGRESS  1
#define PF_NUM_DIRS    2

#define PF_FAMILY_V4 4
#define PF_FAMILY_V6 6

#define PF_VERDICT_DENY	 0
#define PF_VERDICT_ALLOW 1

/* ---- per-pod policy: one hash map per slot (inner map of pf_policy) -------
 *
 * A pod's whole policy, both directions, v4 and v6, lives in ONE map so it
 * can be replaced atomically by swapping the outer map entry (pf_policy[slot]).
 * The entries are (prefix, value) pairs as for a longest-prefix-match table,
 * stored in a BPF_MAP_TYPE_HASH (BPF_F_NO_PREALLOC) with CANONICAL keys: the
 * key's prefixlen is part of the hashed key and every data bit past the
 * prefix is zero. The engine does the longest-prefix match itself, as a
 * binary search over the prefix lengths present (Waldvogel et al., "Scalable
 * high speed IP routing lookups", SIGCOMM 1997): one exact lookup per step,
 * at most PF_ROPE_MAX steps, whatever the number of rules or of distinct
 * lengths (<= 129 for v6 needs 8 steps; 1 length needs 1). (ABI 1 used an
 * LPM trie, whose depth grew with the number of entries; ABI 2 tried every
 * present length, longest first.)
 *
 * Two longest-prefix matches decide a new flow in direction D:
 *   1. ADDR: {kind=ADDR, dir=D, family, set=0, data=peer address masked to
 *             the length tried}
 *      -> val.set = id of the port set that the rules covering this peer
 *         region admit; no match or PF_SET_NONE => deny.
 *   2. PORT: {kind=PORT, dir=D, family=0, set=val.set, data[0]=proto,
 *             data[1..2]=destination port (big endian), masked likewise}
 *      -> val.rule = index (within direction D's rule list) of the first
 *         rule that admits the packet; no match or PF_RULE_NONE => deny.
 * prefixlen counts the header (kind..set, PF_KEY_HDR_BITS bits, always
 * matched in full) plus the data bits: ADDR prefixlen = HDR + cidr length.
 * PORT prefixlen = HDR (any protocol, any port), HDR + 8 (this protocol, any
 * port) or HDR + 8 + n (port prefix of n bits); its "port-key length" is
 * prefixlen - HDR: 0, 8 or 8 + n (0..24).
 *
 * The search. The distinct lengths of one table (ADDR of (dir, family), or
 * PORT of (dir, set)) form a balanced binary search tree: the root is the
 * middle length of the sorted list (index (n - 1) / 2), each subtree is
 * built the same way from its half. A probe at length m that hits continues
 * with the longer lengths (right subtree), a miss with the shorter ones
 * (left subtree). So that a hit at m means "a longer match may exist", every
 * entry of length l puts a MARKER at each length m < l on its search path:
 * {same key, data masked to m}, unless a real entry has that key. A
 * marker's value is that of the longest real entry of length <= m covering
 * it (its "best matching prefix": set PF_SET_NONE / rule PF_RULE_NONE if
 * none), so the last hit of a search holds the answer.
 * Which length to try next is carried in the values as a ROPE (Waldvogel's
 * term): the lengths of the leftmost path of a subtree, first in bits 0..7,
 * PF_ROPE_END-padded. Every entry of length m (real or marker) carries the
 * rope of m's right subtree; the ROOT entry of a table carries the rope of
 * the whole tree. The walk: rope = ROOT's; until the rope ends: m = its
 * first length, drop it; lookup at m; on a hit remember the value and take
 * its rope. A miss just goes on with the next (shorter) length of the rope.
 *   ADDR_ROOT {kind=ADDR_ROOT, dir, family, set=0, data=0}
 *   PORT_ROOT {kind=PORT_ROOT, dir, family=0, set, data=0}
 * both with prefixlen PF_ROOT_PREFIXLEN; no ROOT entry = empty table.
 *
 * A direction that is not isolated is compiled as ADDR 0.0.0.0/0 and ::/0 ->
 * a set with a PORT "any" entry whose rule is PF_RULE_DEFAULT, so the engine
 * never needs to know whether a direction is isolated.
 * Packets without ports (ICMP, non-first fragments, other protocols) are
 * looked up with port 0, which no port rule can name (ports are 1..65535).
 * The names pf_policy_key/pf_policy_val are kept from ABI 1: same key layout.
 */
#define PF_KIND_ADDR	  1
#define PF_KIND_PORT	  2
#define PF_KIND_ADDR_ROOT 3
#define PF_KIND_PORT_ROOT 4
#define PF_KEY_HDR_BITS	  64
#define PF_PORT_KEY_BITS  24 /* protocol (8) + port (16) */
#define PF_ROOT_PREFIXLEN PF_KEY_HDR_BITS
#define PF_ROPE_MAX	  8    /* steps: a tree of <= 255 lengths is <= 8 deep */
#define PF_ROPE_END	  0xff /* rope padding: no further length */
#define PF_ROPE_EMPTY	  0xffffffffffffffffull
#define PF_SET_NONE	  0
#define PF_RULE_DEFAULT	  0xffffffffu
#define PF_RULE_NONE	  0xfffffffeu /* a PORT marker with no shorter match: deny */

struct pf_policy_key {
	pf_u32 prefixlen;
	pf_u8 kind;
	pf_u8 dir;
	pf_u8 family; /* ADDR, ADDR_ROOT: PF_FAMILY_*; PORT, PORT_ROOT: 0 */
	pf_u8 pad;
	pf_u32 set; /* PORT, PORT_ROOT: port-set id; ADDR, ADDR_ROOT: 0 */
	pf_u8 data[16];
};

struct pf_policy_val {
	pf_u32 set;  /* ADDR: port-set id (PF_SET_NONE = deny); others: 0 */
	pf_u32 rule; /* PORT: first admitting rule, PF_RULE_DEFAULT or PF_RULE_NONE; others: 0 */
	pf_u64 rope; /* next lengths to try, byte i = bits 8i..8i+7; see above */
#ifdef PF_DATAPATH_VARIANT
	pf_u64 variant_pad;
#endif
};

/* ---- per-slot state (pf_pods, array indexed by slot) ---------------------- */
#define PF_POD_ACTIVE	 1u
#define PF_POD_SRC_CHECK 2u /* egress IP packets only from the pod's sources (pf_sources) */
/* Audit (ABI 5): the policy decides as usual, but a packet it denies passes.
 * Such packets are counted in would_deny_*, and a flow they open is tracked
 * with PF_CT_F_AUDIT and reported once (PF_EVENT_AUDIT). The source check is
 * not policy and stays enforced. Setting or clearing the flag bumps rev, so
 * audited flows are revalidated (cut) at their next packet. */
#define PF_POD_AUDIT 4u
/* Userspace only, the engine ignores it: the slot is named by an attachment
 * record (from its ADD's slot allocation until DEL has removed the record),
 * so no other pod gets it while a verb that was killed may still clear it. */
#define PF_POD_CLAIMED 8u

struct pf_pod {
	pf_u32 rev;   /* policy revision; node-unique, bumped on every replace */
	pf_u32 flags; /* PF_POD_* */
};

/* ---- the source check (pf_sources, hash, node-wide) ------------------------
 * A pod with PF_POD_SRC_CHECK sends (PF_DIR_EGRESS) IP packets only from its
 * own addresses: {slot, family, addr} present here, the unspecified address
 * (0.0.0.0 for DHCP, :: for DAD, ND and MLD) or an IPv6 link-local fe80::/64
 * (link scoped, never routed, and chosen by the pod's kernel at any time).
 * Any other source is dropped before conntrack and policy, counted in
 * spoofed_* and reported with PF_DROP_SPOOFED. Value: 1, unused. */
#define PF_POD_MAX_SOURCES     8
#define PF_SOURCES_MAX_ENTRIES (PF_MAX_SLOTS * PF_POD_MAX_SOURCES)

struct pf_src_key {
	pf_u32 slot;
	pf_u8 family;
	pf_u8 pad[3];
	pf_u8 addr[16]; /* network order, IPv4 in bytes 0..3, rest zero */
};

/* ---- attachment context handed from the per-attachment stub to the engine --
 * Each attach point runs a per-attachment stub program that writes
 * {slot, dir} into pf_scratch (per-CPU, index 0) and tail-calls the shared
 * engine in pf_tc_engine[0] / pf_xdp_engine[0]. If the tail call fails the
 * stub drops: fail closed. On the datapath of its own binary the stub first
 * serves an established flow's packet from the flow cache itself
 * (fastpath.bpf.c, slot and dir as load-time constants); on an older one it
 * is a dozen raw instructions (plugin/bpf/stub.cpp). Why a stub: XDP has no
 * netns cookie and the pod side ifindex is not unique on a node; the stub
 * costs one verifier run of its own code per attachment instead of one of
 * the whole engine.
 */
struct pf_scratch {
	pf_u32 slot;
	pf_u32 dir;
};

/* ---- conntrack (pf_conntrack4 and pf_conntrack, LRU hashes, node-wide) ----
 * Key is pod-centric so both directions of a connection hit the same entry:
 * the pod's address/port and the peer's address/port, whatever the packet's
 * direction. ICMP echo: both ports = echo identifier. Other portless
 * protocols: ports 0.
 * IPv4 flows live in pf_conntrack4 (since ABI 6): a 20-byte key hashes and
 * compares in 9-11 ns less than the 44-byte one (test_run), on every packet
 * of an established flow. IPv6 flows live in pf_conntrack (the wide key, family 6),
 * and so did IPv4 flows before ABI 6: a datapath that took pods over from
 * such a one adopts them from there while pf_config.wide_v4_until_ns says
 * some may be left (conntrack.h).
 */
struct pf_ct_key {
	pf_u32 slot;
	pf_u8 family;
	pf_u8 proto;
	pf_u16 pod_port;  /* network order */
	pf_u16 peer_port; /* network order */
	pf_u16 pad;
	pf_u8 pod_addr[16];
	pf_u8 peer_addr[16];
};

struct pf_ct4_key {
	pf_u32 slot;
	pf_u8 proto;
	pf_u8 pad;
	pf_u16 pod_port;  /* network order */
	pf_u16 peer_port; /* network order */
	pf_u16 pad2;
	pf_u8 pod_addr[4];
	pf_u8 peer_addr[4];
};

#define PF_CT_F_CLOSING 1u /* TCP FIN or RST seen: short timeout */
#define PF_CT_F_AUDIT	2u /* admitted only because the pod audits: its packets are would-deny */

struct pf_ct_val {
	pf_u64 last_seen_ns; /* bpf_ktime_get_coarse_ns() */
	pf_u32 rev;	     /* pf_pod.rev the flow was last validated against */
	pf_u8 origin;	     /* PF_DIR_* of the packet that opened the flow */
	pf_u8 flags;	     /* PF_CT_F_* */
	pf_u16 pad;
};

/* Idle timeouts, nanoseconds. */
#define PF_CT_TIMEOUT_TCP	  (3600ull * 1000000000ull)
#define PF_CT_TIMEOUT_TCP_CLOSING (10ull * 1000000000ull)
#define PF_CT_TIMEOUT_UDP	  (120ull * 1000000000ull)
#define PF_CT_TIMEOUT_OTHER	  (60ull * 1000000000ull)

/* ---- established flows seen lately (pf_flowcache, per-CPU array; ABI 7) ----
 * A direct-mapped cache in front of the conntrack tables. A flow the engine
 * found live in conntrack is copied to its entry here, and for
 * PF_FC_TTL_JIFFIES after, its packets on that CPU pass on a hash of the key
 * and one compare instead of an LRU hash lookup (test_run: 22-31% of an
 * established packet's time). An entry serves only a packet of the same
 * family and key, at the pod's current revision (pf_pod.rev never repeats
 * within a datapath, so a policy replace, an audit switch or a new pod in
 * the slot all miss), and not a TCP FIN or RST (conntrack must see those:
 * shorter timeout); a SYN does not look (a new flow's first packet: nothing
 * to find). So the cache changes one verdict only: a flow whose conntrack
 * entry was evicted (LRU, a full table) passes until its entry's time is up
 * (a second at most). None expires meanwhile: a live entry is refreshed to
 * within a second and every timeout is longer than two. Colliding flows only
 * evict each other. Written by the engine only; per-CPU, so no other CPU
 * writes an entry while one is read. Read by no userspace code and never
 * shared between datapaths (each object has its own): its layout may change
 * without an ABI bump (it did within ABI 7: until_ns became until_jiffies,
 * pad became flags).
 */
#define PF_FC_INDEX_BITS 12
#define PF_FC_ENTRIES	 (1u << PF_FC_INDEX_BITS) /* per CPU: 4096 */
#define PF_FC_KEY_WORDS	 11			  /* sizeof(struct pf_ct_key) / 4 */
/* Also how often a cached flow still refreshes its conntrack entry, which
 * must outlive it: every PF_CT_TIMEOUT_* is far longer. In jiffies because
 * the verifier inlines bpf_jiffies64() into one load, where a clock in ns is
 * a helper call: 7-17 ns of a cached packet's 55-67 in test_run on an AMD VM
 * with SRSO's safe-RET mitigation. 100 jiffies are 0.1 s (HZ 1000) to 1 s
 * (HZ 100, the least Linux allows); Debian's HZ 250 gives 0.4 s. */
#define PF_FC_TTL_JIFFIES 100ull
/* An egress packet with this entry's key passed the source check at this
 * revision: the key holds the pod's address, and a slot's pf_sources change
 * only before a revision bump (ADD), so later ones skip the check's hash
 * lookup. An entry without it (filled by the flow's ingress) serves egress
 * packets of a pod with PF_POD_SRC_CHECK only after the check, which sets it. */
#define PF_FC_F_SRC_OK 1u

struct pf_fc_entry {
	pf_u32 key[PF_FC_KEY_WORDS]; /* pf_ct4_key (first 5 words, rest 0) or pf_ct_key */
	pf_u32 rev;		     /* pf_pod.rev of the fill */
	pf_u8 family;		     /* PF_FAMILY_*: picks the key's layout */
	pf_u8 verdict;		     /* the engine's verdict for the flow's packets */
	pf_u8 flags;		     /* PF_FC_F_* */
	pf_u8 pad;
	pf_u32 pad2;
	pf_u64 until_jiffies; /* bpf_jiffies64() of the fill + PF_FC_TTL_JIFFIES */
};

/* The entry of a flow key of `words` 32-bit words: the top bits of a sum
 * of products, computed in parallel (a chained hash cost an IPv6 packet
 * 2-4 ns more in test_run). An IPv4 key (pf_ct4_key) enters whole. Of an
 * IPv6 key, the words that tell one flow of a pod from another: slot,
 * protocol and ports, the low word of each address, and the peer's middle
 * two folded into one (6 products instead of 11; with the 64-bit key
 * compare, an IPv6 packet of a cached flow cost 7-10 ns less in test_run).
 * Flows that differ only elsewhere share an entry and take turns missing it.
 * Shared with the tests, which build colliding flows with it. A pod that
 * forges colliding flows only makes them miss. By the words it hashes, so
 * that the per-attachment program can hash a key it holds in registers. */
static inline pf_u32 pf_fc_index_of(pf_u32 k0, pf_u32 k1, pf_u32 k2, pf_u32 ka, pf_u32 kb,
				    pf_u32 kx)
{
	pf_u32 h = k0 * 0x9e3779b1u + k1 * 0x85ebca77u + k2 * 0xc2b2ae3du + ka * 0x27d4eb2fu +
		   kb * 0x165667b1u + kx * 0xd3a2646du;

	return h >> (32 - PF_FC_INDEX_BITS);
}

/* The same for a key in memory. pf_ct4_key: the addresses are words 3 and
 * 4; pf_ct_key: pod address words 3-6, peer's 7-10. */
static inline pf_u32 pf_fc_index(const pf_u32 *key, unsigned words)
{
	if (words < PF_FC_KEY_WORDS)
		return pf_fc_index_of(key[0], key[1], key[2], key[3], key[4], 0);
	return pf_fc_index_of(key[0], key[1], key[2], key[6], key[10], key[8] ^ key[9]);
}

/* ---- fragments of admitted datagrams (pf_frags, LRU hash, node-wide) ------
 * Only a datagram's first fragment carries the L4 header. When it passes
 * (conntrack or policy) and more fragments follow, the datagram is recorded
 * here; a later fragment passes when its datagram is recorded and younger
 * than PF_FRAG_TIMEOUT. Written by the engine only; DEL clears a slot's keys.
 * Key: what the receiver reassembles by, plus slot and direction. IPv6
 * reassembles by (src, dst, id) (RFC 8200) and a later fragment's next
 * header may differ from the first's, so proto is 0 for IPv6.
 */
#define PF_FRAG_MAX_ENTRIES 16384
#define PF_FRAG_TIMEOUT	    (5ull * 1000000000ull)

struct pf_frag_key {
	pf_u32 slot;
	pf_u32 id; /* IPv4 identification (16 bits) or IPv6 fragment id, as on the wire */
	pf_u8 family;
	pf_u8 proto; /* IPv4: protocol; IPv6: 0 */
	pf_u8 dir;   /* PF_DIR_* */
	pf_u8 pad;
	pf_u8 src[16];
	pf_u8 dst[16];
};

struct pf_frag_val {
	pf_u64 first_seen_ns; /* bpf_ktime_get_coarse_ns() of the first fragment */
};
/* Bit 0 of first_seen_ns (a nanosecond off the coarse clock's jiffy): the
 * first fragment passed only because the pod audits. Its later fragments
 * pass as would-deny while the pod still audits, and are judged like
 * unknown fragments once it enforces. */
#define PF_FRAG_AUDIT 1ull

/* ---- counters ---------------------------------------------------------------
 * pf_counters: per-CPU array indexed slot * PF_NUM_DIRS + dir.
 * pf_rule_hits: per-CPU hash {slot, dir, rule} -> u64, counts NEW flows a rule
 * admitted (conntrack hits are not policy decisions), and the later fragments
 * and ICMP errors it admitted with port 0 (frag.h, icmp_error.h). Rule PF_RULE_DEFAULT
 * counts flows admitted because the direction is not isolated.
 */
struct pf_counter {
	pf_u64 allowed_packets;
	pf_u64 allowed_bytes;
	pf_u64 denied_packets;
	pf_u64 denied_bytes;
	pf_u64 spoofed_packets; /* egress from a source not the pod's: not in denied_* */
	pf_u64 spoofed_bytes;
	pf_u64 would_deny_packets; /* audit: what enforce would have dropped, passed (not in
				      allowed_*) */
	pf_u64 would_deny_bytes;
	pf_u64 events_lost; /* pf_events records not written: the ring buffer was full */
	pf_u64 pad;
};

struct pf_rule_key {
	pf_u32 slot;
	pf_u32 dir;
	pf_u32 rule;
};

/* ---- node config (pf_config, array of 1) and drop events (pf_events ringbuf) */
#define PF_CFG_EVENTS 1u /* emit a pf_event per denied packet while set */

#define PF_DROP_POLICY	0 /* pf_event.reason: denied by policy (or malformed) */
#define PF_DROP_SPOOFED 1 /* a source the pod does not own (source check) */
#define PF_EVENT_AUDIT                                                                             \
	2 /* not a drop: the first packet of a flow the policy denies, passed (audit) */

struct pf_config {
	pf_u32 flags;
	pf_u32 pad;
	/* Until then (bpf_ktime_get_coarse_ns), IPv4 flows of pods moved from a
	 * datapath before ABI 6 may be in pf_conntrack; set by the move. */
	pf_u64 wide_v4_until_ns;
};

struct pf_event {
	pf_u64 ts_ns;
	pf_u32 slot;
	pf_u8 dir;
	pf_u8 family;
	pf_u8 proto;
	pf_u8 reason; /* PF_DROP_* */
	pf_u8 src[16];
	pf_u8 dst[16];
	pf_u16 sport; /* network order */
	pf_u16 dport; /* network order */
	pf_u32 len;
};

/* ---- pinned names (under <bpffsRoot>/podfence/datapath-<hash>/) ----------- */
#define PF_PIN_PROG_TC	"prog_tc"
#define PF_PIN_PROG_XDP "prog_xdp"
/* map pins use the map names: pf_policy, pf_pods, pf_scratch, pf_tc_engine,
 * pf_xdp_engine, pf_conntrack, pf_counters, pf_rule_hits, pf_config, pf_events,
 * pf_sources, pf_frags, pf_conntrack4 */

#endif /* PODFENCE_ABI_H */

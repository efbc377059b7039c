/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/* Every map of the datapath. Layout and meaning: podfence_abi.h. */
#ifndef PODFENCE_MAPS_H
#define PODFENCE_MAPS_H

#include "podfence_abi.h"

/* Template for the per-pod policy maps; userspace creates one per pod, sized
 * to its entries (a hash inner map may differ from the template in
 * max_entries only). One entry here: libbpf creates the template for real
 * while loading, and a hash allocates its buckets up front.
 * Sizes, not BTF types: clang emits only a forward declaration for types
 * reached through the inner map definition, which libbpf cannot size. */
struct pf_policy_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(struct pf_policy_key));
	__uint(value_size, sizeof(struct pf_policy_val));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PF_MAX_SLOTS);
	__type(key, __u32);
	__array(values, struct pf_policy_inner);
} pf_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PF_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct pf_pod);
} pf_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pf_scratch);
} pf_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pf_tc_engine SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pf_xdp_engine SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PF_CT_MAX_ENTRIES);
	__type(key, struct pf_ct_key);
	__type(value, struct pf_ct_val);
} pf_conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PF_CT_MAX_ENTRIES);
	__type(key, struct pf_ct4_key);
	__type(value, struct pf_ct_val);
} pf_conntrack4 SEC(".maps");

/* Per datapath, never shared: an empty cache is a correct one. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PF_FC_ENTRIES);
	__type(key, __u32);
	__type(value, struct pf_fc_entry);
} pf_flowcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PF_FRAG_MAX_ENTRIES);
	__type(key, struct pf_frag_key);
	__type(value, struct pf_frag_val);
} pf_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PF_MAX_SLOTS *PF_NUM_DIRS);
	__type(key, __u32);
	__type(value, struct pf_counter);
} pf_counters SEC(".maps");

/* Preallocated: with BPF_F_NO_PREALLOC the first hit of each rule allocated
 * per-CPU memory inside the program, measured at ~28 us per new flow. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PF_RULE_HITS_MAX_ENTRIES);
	__type(key, struct pf_rule_key);
	__type(value, __u64);
} pf_rule_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pf_config);
} pf_config SEC(".maps");

/* Written by userspace only (ADD, DEL); not preallocated: most pods hold
 * one or two addresses of the PF_POD_MAX_SOURCES they may have. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, PF_SOURCES_MAX_ENTRIES);
	__type(key, struct pf_src_key);
	__type(value, __u8);
} pf_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PF_EVENTS_RING_BYTES);
} pf_events SEC(".maps");

#endif /* PODFENCE_MAPS_H */

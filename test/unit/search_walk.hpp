// A userspace copy of the engine's longest-prefix match in a pod's policy map
// (bpf/policy.h pf_search; layout and walk: bpf/podfence_abi.h, "The
// search"), shared by the compile() and with_search() tests. It only reads
// the entries the way the kernel does, so wrong markers or ropes show up as
// wrong answers, not as the simulator compensating for them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "policy/compile.hpp"

namespace search_walk {

using podfence::policy::PolicyEntry;

inline bool key_less(const PolicyEntry& a, const PolicyEntry& b) {
    return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
}

// Exact-match lookup, as in a BPF hash map. `entries` must be sorted by key
// (compile() and with_search() output are): a binary search keeps the
// 100000-rule test fast.
inline const PolicyEntry* exact(const std::vector<PolicyEntry>& entries, const pf_policy_key& k) {
    PolicyEntry probe;
    probe.key = k;
    auto it = std::lower_bound(entries.begin(), entries.end(), probe, key_less);
    if (it == entries.end() || std::memcmp(&it->key, &k, sizeof k) != 0) return nullptr;
    return &*it;
}

// `bits` of `data` kept, the rest zeroed: the canonical key data. Lengths
// past 128 keep everything, as the kernel's clamped masks do.
inline void keep_bits(std::uint8_t* data, unsigned bits) {
    for (unsigned i = bits; i < 128; ++i)
        data[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
}

struct Walk {
    std::uint32_t answer = 0;          // of the last hit; PF_SET_NONE / PF_RULE_NONE when none
    const PolicyEntry* last = nullptr; // the last hit
    unsigned lookups = 0;              // after the ROOT lookup
    bool cut = false;                  // PF_ROPE_MAX lookups done and the rope had more
};

// One search in the table of `key` (kind ADDR or PORT, dir, family, set as
// the engine sets them; data = the full address or port key, unmasked).
inline Walk walk(const std::vector<PolicyEntry>& entries, pf_policy_key key) {
    const bool port = key.kind == PF_KIND_PORT;
    Walk w;
    w.answer = port ? PF_RULE_NONE : PF_SET_NONE;

    pf_policy_key root = key;
    root.prefixlen = PF_ROOT_PREFIXLEN;
    root.kind = port ? PF_KIND_PORT_ROOT : PF_KIND_ADDR_ROOT;
    std::memset(root.data, 0, sizeof root.data);
    const PolicyEntry* r = exact(entries, root);
    std::uint64_t rope = r ? r->val.rope : PF_ROPE_EMPTY;

    std::uint8_t full[16];
    std::memcpy(full, key.data, sizeof full);
    for (unsigned i = 0; i < PF_ROPE_MAX; ++i) {
        const auto len = static_cast<unsigned>(rope & 0xff);
        if (len == PF_ROPE_END) break;
        rope = rope >> 8 | std::uint64_t{PF_ROPE_END} << 56;
        key.prefixlen = PF_KEY_HDR_BITS + len;
        std::memcpy(key.data, full, sizeof full);
        keep_bits(key.data, len);
        ++w.lookups;
        if (const PolicyEntry* e = exact(entries, key)) {
            w.answer = port ? e->val.rule : e->val.set;
            w.last = e;
            rope = e->val.rope;
        }
    }
    w.cut = (rope & 0xff) != PF_ROPE_END && w.lookups == PF_ROPE_MAX;
    return w;
}

} // namespace search_walk

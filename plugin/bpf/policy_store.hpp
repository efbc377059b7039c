// A pod's compiled policy in the kernel: one hash map per slot (layout:
// bpf/podfence_abi.h) in the pf_policy map-in-map, replaced atomically. This
// is the API the plugin and the CLI use to change a live pod's policy.
#pragma once

#include <cstdint>
#include <vector>

#include "../policy/compile.hpp"
#include "datapath.hpp"

namespace podfence::bpf {

class PolicyStore {
public:
    explicit PolicyStore(const Datapath& dp) : dp_(dp) {}

    // Builds a new map aside (sized to `entries`), fills it, swaps pf_policy[slot] to it in one
    // update, then bumps pf_pods[slot].rev to a node-unique revision so
    // conntrack entries of flows the new policy no longer admits get cut.
    // Marks the slot active. Returns the new revision.
    // Throws Error(Code::MapSeed) (E2BIG etc. named) and leaves the old policy in place,
    // also when the datapath reads another policy-map ABI (Datapath::abi()).
    std::uint32_t replace(std::uint32_t slot, const std::vector<policy::TrieEntry>& entries);

    // Entries currently in pf_policy[slot], sorted (empty if none). Hash
    // iteration order is arbitrary: the sort makes it comparable to compile().
    // Throws Error(Code::MapSeed) for a datapath of another policy-map ABI.
    std::vector<policy::TrieEntry> read(std::uint32_t slot) const;

    // Removes the slot's policy, pod record, counters, rule hits and
    // conntrack entries. No error if already clear.
    void clear(std::uint32_t slot);

    // A slot no attachment uses (pf_pods flags == 0). Throws Error(Code::MapSeed) when full.
    std::uint32_t allocate_slot() const;

    std::uint32_t revision(std::uint32_t slot) const;

private:
    const Datapath& dp_;
};

} // namespace podfence::bpf

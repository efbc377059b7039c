// A pod's compiled policy in the kernel: one hash map per slot (layout:
// bpf/podfence_abi.h) in the pf_policy map-in-map, replaced atomically. This
// is the API the plugin and the CLI use to change a live pod's policy.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../../bpf/podfence_abi.h"
#include "../policy/compile.hpp"
#include "../policy/sources.hpp"
#include "datapath.hpp"

namespace podfence::bpf {

// pf_pods is read whole once per store, at its first use, and that copy is
// kept in step with the store's own writes (a read costs about 1 ms; ADD's
// three reads were a third of it with rcu_expedited=1). So a store must be
// the only writer of its datapath's pf_pods while it lives: one store per
// datapath within a verb, all under the NodeLock. The datapath itself never
// writes pf_pods. pod() and revision() read the kernel's entry.
class PolicyStore {
public:
    explicit PolicyStore(const Datapath& dp) : dp_(dp) {}
    const Datapath& datapath() const { return dp_; }

    // Builds a new map aside (sized to `entries`), fills it, swaps pf_policy[slot] to it in one
    // update (an inactive slot's spare map that is large enough is refilled in place
    // instead: no RCU grace period on ADD), then bumps pf_pods[slot].rev to a node-unique revision so
    // conntrack entries of flows the new policy no longer admits get cut.
    // Marks the slot active, keeping its PF_POD_SRC_CHECK. Returns the new revision.
    // Throws Error(Code::MapSeed) (E2BIG etc. named) and leaves the old policy in place,
    // also when the datapath reads another policy-map ABI (Datapath::abi()).
    // min_rev: the new revision is above it too (a pod moving from another
    // datapath passes its old revision, whose conntrack entries it shares).
    // audit: sets PF_POD_AUDIT in the same step (ADD, a move to another
    // datapath, `update --enforcement`); nullopt keeps the slot's.
    std::uint32_t replace(std::uint32_t slot, const std::vector<policy::PolicyEntry>& entries,
                          std::uint32_t min_rev = 0, std::optional<bool> audit = std::nullopt);

    // Switches an active slot between enforce and audit (PF_POD_AUDIT) with a
    // new node-unique revision, so flows admitted only by audit are cut at
    // their next packet when it enforces. Its policy map stays. Returns the
    // revision (the current one, unchanged, when the flag already is `audit`).
    // Throws Error(Code::MapSeed) when the slot is not active.
    std::uint32_t set_audit(std::uint32_t slot, bool audit);

    // Entries currently in pf_policy[slot], sorted (empty if none). Hash
    // iteration order is arbitrary: the sort makes it comparable to compile().
    // Throws Error(Code::MapSeed) for a datapath of another policy-map ABI.
    std::vector<policy::PolicyEntry> read(std::uint32_t slot) const;

    // The source check: writes `sources.addrs` as the slot's pf_sources
    // entries and sets PF_POD_SRC_CHECK in pf_pods[slot] to `sources.check`
    // (not touching PF_POD_ACTIVE). ADD calls it before replace() activates
    // the slot, so no packet sees the pod active without its addresses. For a
    // slot just claimed, or one whose entries are these (a move resumed): it
    // does not look for other entries, since clear() deletes them before a
    // slot is freed. Throws Error(Code::MapSeed) beyond PF_POD_MAX_SOURCES
    // addresses or for a datapath of another ABI.
    void set_sources(std::uint32_t slot, const policy::PodSources& sources);
    // Deletes pf_sources entries of free slots. No verb leaves any (clear()
    // frees a slot last), but a podfence that freed it first and was killed
    // mid-clear could. Walks the whole map; returns how many it deleted.
    std::size_t drop_stray_sources();
    // The flag and the slot's pf_sources entries, sorted.
    policy::PodSources read_sources(std::uint32_t slot) const;

    // What clear() leaves in pf_pods[slot]: a free slot, or only the claim
    // (PF_POD_CLAIMED) of the attachment record that still names it, which
    // release() drops once that record is gone.
    enum class After { Free, Claimed };

    // Removes the slot's policy, pod record, counters, rule hits, conntrack
    // and pf_sources entries. The policy map stays in pf_policy[slot], empty,
    // as the spare the next replace() of this slot refills (unless it holds
    // more than a few thousand entries). No error if already clear. moved_to:
    // the datapath the slot's pod moved to; state shared with it is kept.
    void clear(std::uint32_t slot, const Datapath* moved_to = nullptr, After after = After::Free);

    // A slot no attachment uses (pf_pods flags == 0). Throws Error(Code::MapSeed) when full.
    // also_taken: slots of pods on other datapaths of the node, which share
    // conntrack with this one (kSharedMaps) until they move here.
    std::uint32_t allocate_slot(const std::set<std::uint32_t>& also_taken = {}) const;
    // allocate_slot(), then claim() it: for a record about to name it.
    std::uint32_t claim_slot(const std::set<std::uint32_t>& also_taken = {});
    // Marks the slot PF_POD_CLAIMED (keeping its other flags): until release(),
    // allocate_slot() never hands it out, even once clear() made it inactive.
    void claim(std::uint32_t slot);
    // Frees a slot that holds nothing but its claim. A slot still in use
    // (any other flag) is left as it is and false returned.
    bool release(std::uint32_t slot);
    // Slots marked in use in pf_pods (claimed, active or with sources).
    std::set<std::uint32_t> used_slots() const;
    // Whether a used slot is inactive: what a verb that was killed or failed
    // leaves (one that finished leaves each used slot active).
    bool has_inactive_used_slot() const;

    std::uint32_t revision(std::uint32_t slot) const;
    // pf_pods[slot]; nullopt when the kernel has no such entry.
    std::optional<pf_pod> pod(std::uint32_t slot) const;

    // Throws Error(Code::MapSeed) naming the limit when a pod interface has
    // more than PF_POD_MAX_SOURCES addresses for the source check.
    static void require_source_capacity(std::size_t addresses, const std::string& ifname);

private:
    const std::vector<pf_pod>& pods() const;
    // pf_pods[slot]: from the copy once there is one, else one lookup.
    pf_pod current(std::uint32_t slot) const;
    void put(std::uint32_t slot, const pf_pod& pod);
    // pf_pods[slot] from `was` to `now` (see the definition: leaving audit).
    void write(std::uint32_t slot, const pf_pod& was, const pf_pod& now);

    const Datapath& dp_;
    mutable std::optional<std::vector<pf_pod>> pods_;
};

} // namespace podfence::bpf
